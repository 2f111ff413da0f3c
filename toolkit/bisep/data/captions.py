"""AudioCaps captions -> source phrases: a small rule-based parser.

The paper trains on AudioCaps with one text prompt per sound source, made by cutting each
caption into **source phrases** (noun phrases naming a source, with what it does)::

    parse_caption("A man speaks followed by a dog barking and birds chirping")
    # -> ["A man speaks", "A dog barking", "Birds chirping"]
    parse_caption("Wind blows and rustles leaves with some distant traffic")
    # -> ["Wind blows and rustles leaves", "Some distant traffic"]

Rules (``docs/captions.md`` has examples and the known limits):

1. **Cut** the caption at punctuation (:data:`CUT_MARKS`) and at :data:`CONNECTORS`
   ("followed by", "and then", "while", "as", "with", "over", "and", ...), the longest
   connector first, except where a connector lies inside one of the :data:`SET_PHRASES`
   ("man and woman", "on and off", "over and over").
2. **Trim** each fragment's leading :data:`LEADING_FILLERS` ("then", "and", "in the
   distance", ...) when words follow them.
3. **Attach** a fragment to the previous phrase, with its connector, when it does not name a
   new source: it starts with a word of :data:`NON_SOURCE_STARTS` (pronoun, preposition,
   adverb, auxiliary) or an adverb in ``-ly``; it is a verb sharing the previous clause's
   subject ("a man speaks *and laughs*", "a dog barking *and whimpering*"); or its head
   noun is an attribute of the previous phrase (:data:`ATTRIBUTE_HEADS`: "with a deep
   *voice*", "over a *loudspeaker*", "after a few *seconds*"). An adverbial before the
   first phrase ("In the distance, a dog barks") is prefixed to the next one instead.
4. **Clean**: drop duplicates (case-insensitive), capitalise the first letter; a caption
   that nothing splits gives itself, cleaned.

Deterministic and pure Python (no tagger, no model download); every rule is one of the
tables below, so extending it means adding a word.
"""
from __future__ import annotations

import re

__all__ = ["parse_caption", "CONNECTORS", "COORDINATORS", "CUT_MARKS", "SET_PHRASES",
           "LEADING_FILLERS", "PRONOUNS", "PREPOSITIONS", "ADVERBS", "AUXILIARIES",
           "NON_SOURCE_STARTS", "VERBS", "ATTRIBUTE_HEADS"]

# Words (with inner apostrophes, hyphens, dots: "man's", "high-pitched", "1.5") and the
# punctuation marks that cut; any other character (quotes, brackets) is dropped.
_TOKEN = re.compile(r"\w(?:[\w'’.&/+-]*\w)?|[,;:.!?—–]|(?<!\S)-(?!\S)")

# Punctuation ends a phrase: list commas, sentence ends, dashes between clauses.
CUT_MARKS = frozenset(",;:.!?—–-")

# Word sequences that separate two sources' phrases. Matched longest first, so "and then"
# wins over "and" and "along with" over "with".
CONNECTORS = (
    # succession: one source after another
    "and is followed by", "is followed by", "are followed by", "followed by",
    "and then", "then", "after which", "after", "before", "until",
    # simultaneity: one source over / during / along with another
    "while", "whilst", "as well as", "as", "during", "amid", "over",
    "along with", "together with", "accompanied by", "with",
    # plain coordination
    "and", "but",
)

# Connectors that join clauses: after them a bare verb ("and laughs") shares the
# previous subject. () is a punctuation cut. "with", "as", "over"... introduce a new
# noun phrase instead, so a verb-looking word after them is read as a noun.
COORDINATORS = frozenset({(), ("and",), ("but",), ("then",), ("and", "then")})

# "and" (or another connector) inside these is not a cut: they name one source or are an
# adverbial. An article may stand before the second noun ("a man and a woman").
SET_PHRASES = (
    # a conversation is one speech source
    "man and woman", "woman and man", "men and women", "women and men",
    "boy and girl", "girl and boy", "boys and girls", "male and female", "female and male",
    "ladies and gentlemen",
    # one clattering source
    "pots and pans", "knives and forks",
    # adverbials of manner / time / direction
    "on and off", "off and on", "back and forth", "up and down", "in and out",
    "to and fro", "over and over", "again and again", "now and then", "here and there",
    "more and more", "louder and louder", "closer and closer", "faster and faster",
    "stop and go", "rock and roll",
)
_SET_PHRASE_SKIPS = frozenset({"a", "an", "the"})

# Dropped from the start of a fragment when words follow: conjunctions and time/place
# adverbials that do not belong to the source ("then in the distance a dog barks").
LEADING_FILLERS = (
    "and", "or", "but", "then", "also", "later", "finally", "eventually", "soon",
    "suddenly", "meanwhile", "afterwards", "afterward", "again", "nearby",
    "in the distance", "in the background", "off in the distance", "far away", "far off",
    "close by", "at a distance", "from a distance", "from afar",
)
# Fragments made only of these carry nothing: dropped rather than attached.
_DROPPABLE = frozenset({"and", "or", "but", "then"})

# A fragment starting with one of these does not name a new source: it qualifies the
# previous one ("as it speeds up", "in the distance", "again", "is heard").
PRONOUNS = frozenset(  # refer back to a source already named
    "it he she they him them we you i itself himself herself themselves this that which "
    "who whom what".split())
PREPOSITIONS = frozenset(  # place, direction, manner; particles
    "in on at from into onto to toward towards through across around near under behind "
    "inside outside off up down away out by along past for of within throughout against "
    "beside beneath underneath above below upon between without like about back forward "
    "during amid".split())
ADVERBS = frozenset(  # adverbs without -ly (those with it are caught by their ending)
    "again once twice still now very too far close much more less nonstop also later soon "
    "meanwhile afterwards afterward nearby".split())
AUXILIARIES = frozenset(  # the subject is the previous phrase's
    "is are was were be being been has have had can could will would may might do does "
    "did not gets get keeps".split())
NON_SOURCE_STARTS = PRONOUNS | PREPOSITIONS | ADVERBS | AUXILIARIES

# "-ly" words that are not adverbs (nouns, adjectives before a noun).
_LY_NOT_ADVERBS = frozenset(
    "butterfly butterflies dragonfly firefly housefly family assembly lily belly jelly ally "
    "rally supply reply holly gully bully elderly early friendly lively lovely only ugly "
    "curly chilly hilly oily daily weekly".split())

# "-ing" words that are not gerunds.
_ING_NOT_GERUNDS = frozenset(
    "thing something nothing anything everything string ceiling building morning evening "
    "wedding pudding sibling spring swing sling sting awning railing duckling".split())

# Verbs of AudioCaps captions (base forms; third-person forms are made below). A bare one
# after a coordinator ("and laughs") shares the previous subject. Words that are far more
# often a source noun there ("rain", "fire", "steam", "thunder", "leave") are left out.
_VERB_BASES = frozenset((
    # voices
    "speak talk say sing hum whistle laugh giggle chuckle cry sob scream shout yell cheer "
    "clap applaud cough sneeze sniff snore breathe gasp burp whisper mumble murmur chatter "
    "babble answer reply call respond converse pray chant preach narrate announce "
    # animals
    "bark growl howl whine whimper yip yap pant meow purr hiss moo oink squeal grunt bleat "
    "neigh cluck crow quack honk coo caw chirp tweet twitter squawk buzz croak roar trumpet "
    "flap flutter peck "
    # engines and vehicles
    "rumble rev idle accelerate decelerate slow speed pass approach drive move go come "
    "stop start begin continue keep run die sputter brake skid reverse travel fly land "
    "hover "
    # water, air, weather
    "blow gust rustle pour fall drip trickle flow splash gurgle sizzle crackle whoosh "
    "whir whirr drone vibrate "
    # impacts and mechanisms
    "pop bang knock tap click clank clang clink clatter rattle jingle ring chime beep ding "
    "tick squeak creak scrape scratch rub thump thud slam shut open close smash shatter "
    "break explode shoot spin grind type write walk step jump hit strike bounce roll wash "
    "flush fill boil fry cook chop eat chew drink swallow shuffle crinkle crumple tear rip "
    "zip crunch blare wail toot chug clack screech "
    # sound in general
    "sound play echo fade grow increase decrease rise change follow occur repeat "
    "emit make produce erupt").split())


def _third_person(verb: str) -> str:
    """``"buzz"`` -> ``"buzzes"``, ``"cry"`` -> ``"cries"``, ``"moo"`` -> ``"moos"``."""
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    if verb.endswith(("s", "x", "z", "ch", "sh")) or (verb.endswith("o")
                                                       and not verb.endswith("oo")):
        return verb + "es"
    return verb + "s"


VERBS = _VERB_BASES | {_third_person(verb) for verb in _VERB_BASES}

# Head (last) nouns that make a fragment an attribute of the previous phrase rather than a
# source, by the connector's last word (None: after any connector, when the fragment has
# no verb): "speaks with a deep voice", "speaks over a loudspeaker", "answers after a few
# seconds".
ATTRIBUTE_HEADS = {
    "with": frozenset("voice accent echo echoes reverb tone pitch intensity volume speed force "
                      "rhythm frequency emphasis enthusiasm excitement distortion".split()),
    "over": frozenset("loudspeaker loudspeakers speaker speakers microphone radio intercom "
                      "megaphone phone telephone speakerphone pa television tv".split()),
    None: frozenset("second seconds moment moments minute minutes while pause pauses time "
                    "times interval intervals".split()),
}

_CONNECTOR_WORDS = sorted((tuple(c.split()) for c in CONNECTORS), key=len, reverse=True)
_SET_PHRASE_WORDS = [tuple(p.split()) for p in SET_PHRASES]
_FILLER_WORDS = sorted((tuple(f.split()) for f in LEADING_FILLERS), key=len, reverse=True)


def parse_caption(caption: str) -> list[str]:
    """The source phrases of a caption, in caption order.

    Args:
        caption: one AudioCaps-style caption.

    Returns:
        list of str: at least one phrase; each non-empty, whitespace-normalised,
        capitalised, without punctuation at its ends, unique case-insensitively.

    Raises:
        ValueError: ``caption`` is not a string or has no word.
    """
    if not isinstance(caption, str):
        raise ValueError(f"parse_caption needs a caption string, got {type(caption).__name__}")
    tokens = _TOKEN.findall(caption)
    words = [t for t in tokens if t not in CUT_MARKS]
    if not words:
        raise ValueError(f"parse_caption needs a caption with at least one word, got "
                         f"{caption!r}")
    phrases, seen = [], set()
    for phrase in _attach(_split(tokens)) or [words]:
        text = " ".join(phrase)
        if text.lower() not in seen:
            seen.add(text.lower())
            phrases.append(text[:1].upper() + text[1:])
    return phrases


def _split(tokens: list[str]) -> list[tuple[tuple[str, ...], list[str]]]:
    """Rule 1: ``[(connector, words), ...]``; the connector is ``()`` for a punctuation
    cut and for the caption's start."""
    lower = [t.lower() for t in tokens]
    protected = _set_phrase_positions(lower)
    fragments, connector, current, i = [], (), [], 0
    while i < len(tokens):
        if lower[i] in CUT_MARKS:
            fragments.append((connector, current))
            connector, current, i = (), [], i + 1
            continue
        match = next((c for c in _CONNECTOR_WORDS if tuple(lower[i:i + len(c)]) == c
                      and not protected.intersection(range(i, i + len(c)))), None)
        if match:
            fragments.append((connector, current))
            connector, current, i = tuple(tokens[i:i + len(match)]), [], i + len(match)
            continue
        current.append(tokens[i])
        i += 1
    fragments.append((connector, current))
    return fragments


def _set_phrase_positions(lower: list[str]) -> set[int]:
    """Token positions covered by a :data:`SET_PHRASES` occurrence."""
    covered = set()
    for start in range(len(lower)):
        for phrase in _SET_PHRASE_WORDS:
            i, k = start, 0
            while i < len(lower) and k < len(phrase):
                if lower[i] == phrase[k]:
                    k += 1
                elif not (k > 0 and lower[i] in _SET_PHRASE_SKIPS):
                    break
                i += 1
            if k == len(phrase):
                covered.update(range(start, i))
    return covered


def _attach(fragments: list[tuple[tuple[str, ...], list[str]]]) -> list[list[str]]:
    """Rules 2 and 3: the phrases (word lists) of the fragments."""
    phrases: list[list[str]] = []
    leading: list[str] = []  # non-source words before the first phrase
    for connector, words in fragments:
        glue = list(connector) + words
        if all(w.lower() in _DROPPABLE for w in glue):
            continue
        body = _strip_fillers(words)
        previous = phrases[-1] if phrases else None
        if body and _names_source(tuple(w.lower() for w in connector), body, previous):
            phrases.append(leading + body)
            leading = []
        elif previous is not None:
            previous.extend(glue)
        elif body and not _is_adverbial(body):  # nothing before to qualify: stands alone
            phrases.append(leading + body)
            leading = []
        else:
            leading.extend(glue)
    return phrases


def _strip_fillers(words: list[str]) -> list[str]:
    """Rule 2: ``words`` less its leading fillers, as long as words remain after them."""
    lower = [w.lower() for w in words]
    start = 0
    while True:
        filler = next((f for f in _FILLER_WORDS if tuple(lower[start:start + len(f)]) == f
                       and start + len(f) < len(words)), None)
        if filler is None:
            return words[start:]
        start += len(filler)


def _names_source(connector: tuple[str, ...], body: list[str],
                  previous: list[str] | None) -> bool:
    """Rule 3: whether a fragment names a new source (``False``: it qualifies the
    previous phrase)."""
    lower = [w.lower() for w in body]
    first, head = lower[0], lower[-1]
    if first in NON_SOURCE_STARTS or _is_adverbial(body):
        return False
    attribute_heads = ATTRIBUTE_HEADS.get(connector[-1] if connector else "", frozenset())
    if head in attribute_heads or (head in ATTRIBUTE_HEADS[None] and not _has_verb(body)):
        return False
    if previous is None or connector not in COORDINATORS:
        return True
    # "(wind blows) and rustles leaves", not "(a train passes) and whistles blow"
    shares_subject = first in VERBS and (len(lower) == 1 or lower[1] not in _VERB_BASES)
    if shares_subject and _is_clause(previous):
        return False
    # "(a dog barking) and whimpering"
    return not (_is_gerund(first) and len(previous) > 1 and _is_gerund(previous[-1].lower()))


def _is_adverbial(words: list[str]) -> bool:
    """Whether ``words`` are a place, time or manner adverbial ("in the distance",
    "repeatedly", "far away"), which qualifies a source without naming one."""
    lower = [w.lower() for w in words]
    first = lower[0]
    return (first in PREPOSITIONS or first in ADVERBS or tuple(lower) in _FILLER_WORDS
            or (len(first) > 4 and first.endswith("ly") and first not in _LY_NOT_ADVERBS))


def _is_gerund(word: str) -> bool:
    return len(word) > 4 and word.endswith("ing") and word not in _ING_NOT_GERUNDS


def _has_verb(words: list[str]) -> bool:
    lower = [w.lower() for w in words]
    return any(w in VERBS or w in AUXILIARIES or _is_gerund(w) for w in lower)


def _is_clause(words: list[str]) -> bool:
    """Whether ``words`` have a subject before a verb ("wind blows", "a man is speaking")."""
    return len(words) > 1 and _has_verb(words[1:])
