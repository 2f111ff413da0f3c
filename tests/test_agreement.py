"""Rank agreement of a proxy with a reference metric (bisep.metrics.agreement), and the
report table that shows it, from real per_item.csv files."""
import json
import math

import numpy as np
import pytest

from bisep.metrics.agreement import rank_agreement, read_per_item


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(header) + "\n"
                    + "".join(",".join(map(str, row)) + "\n" for row in rows))


def ranks(x):
    return np.argsort(np.argsort(x)).astype(float)


def test_spearman_by_hand_pairs_by_item_and_source(tmp_path):
    rng = np.random.default_rng(0)
    sdr = rng.normal(5, 3, 12)
    proxy = sdr + rng.normal(0, 3, 12)  # agrees in part
    keys = [(f"i{n // 2}", ("a", "b")[n % 2]) for n in range(12)]
    write_csv(tmp_path / "ref.csv", ["item", "source", "sdr", "sdri"],
              [(i, s, v, -v) for (i, s), v in zip(keys, sdr)]
              + [("extra", "a", 1.0, 1.0)])  # no proxy row: not paired
    # Rows in another order, one pair with an infinite SDR (a perfect estimate): left out.
    write_csv(tmp_path / "proxy.csv", ["item", "source", "clap_gain"],
              [(i, s, v) for (i, s), v in reversed(list(zip(keys, proxy)))])
    ref = read_per_item(tmp_path / "ref.csv")
    ref[(None, "i0", "a")]["sdr"] = math.inf
    found = rank_agreement(read_per_item(tmp_path / "proxy.csv"), ref, ["clap_gain"],
                           ["sdr", "sdri"])
    expected = np.corrcoef(ranks(proxy[1:]), ranks(sdr[1:]))[0, 1]  # Pearson of the ranks
    assert found["clap_gain"]["sdr"].rho == pytest.approx(expected, abs=1e-12)
    assert found["clap_gain"]["sdr"].pairs == 11
    assert found["clap_gain"]["sdri"].rho == pytest.approx(
        -np.corrcoef(ranks(proxy), ranks(sdr))[0, 1], abs=1e-12)
    assert found["clap_gain"]["sdri"].pairs == 12
    # Two runs pool by their keys; too few pairs give nan.
    pooled = {**read_per_item(tmp_path / "proxy.csv", key="x"),
              **read_per_item(tmp_path / "proxy.csv", key="y")}
    refs = {**read_per_item(tmp_path / "ref.csv", key="x"),
            **read_per_item(tmp_path / "ref.csv", key="y")}
    assert rank_agreement(pooled, refs, ["clap_gain"], ["sdr"])["clap_gain"]["sdr"].pairs == 24
    two = {k: refs[k] for k in list(pooled)[:2]}
    assert math.isnan(rank_agreement(pooled, two, ["clap_gain"], ["sdr"])["clap_gain"]["sdr"].rho)
    with pytest.raises(KeyError, match="clap_score"):
        rank_agreement(pooled, refs, ["clap_score"], ["sdr"])


def test_report_shows_each_proxys_rank_agreement_and_the_pool(tmp_path):
    from bisep.metrics.aggregate import summarize_rows
    from test_report import cli, make_data, make_experiment

    exp = tmp_path / "exp"
    manifest, lines = make_data(tmp_path / "data")
    make_experiment(exp, "unsup", None, 0.6, manifest, lines, curves=False)
    make_experiment(exp, "semi", "semi", 0.15, manifest, lines, curves=False)
    columns = ["clap_score", "clap_score_mix", "clap_gain", "energy_split_db"]
    for tag in ("unsup", "semi"):
        rows = []
        for key, values in read_per_item(exp / tag / "scores" / "per_item.csv").items():
            # The score ranks in reverse of SDRi, the gain and the split as SDRi.
            rows.append({"item": key[1], "source": key[2],
                         "clap_score": 0.5 - values["sdri"] / 100, "clap_score_mix": 0.2,
                         "clap_gain": values["sdri"] / 10, "energy_split_db": values["sdri"]})
        write_csv(exp / tag / "scores_reference_free" / "per_item.csv", ["item", "source", *columns],
                  [(r["item"], r["source"], *(r[c] for c in columns)) for r in rows])
        (exp / tag / "scores_reference_free" / "summary.json").write_text(
            json.dumps({"metrics": summarize_rows(rows, columns)}))
    rc, _, err = cli("report", "--exp-dir", exp)
    assert rc == 0, err
    text = (exp / "RESULTS.md").read_text()
    assert "| rho(score, SDRi) | rho(gain, SDRi) | rho(split, SDRi) |" in text
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| ")}
    sdri = json.loads((exp / "semi" / "scores" / "summary.json").read_text())["metrics"]["sdri"]
    assert lines["semi"][0] == f"{sdri['mean']:.2f}" and lines["semi"][2] == "0.200"
    assert lines["semi"][5:] == ["-1.00", "1.00", "1.00"]
    assert lines["all 2 (pooled)"] == ["-"] * 5 + ["-1.00", "1.00", "1.00"]
