"""A web page for listening to a trained model: ``bisep demo MODEL``.

The page (:func:`bisep.demo.app.build_app`, Gradio) takes a mixture (uploaded, recorded or
one of the examples), one or more text queries, an optional negative and an optional audio
example, and gives back the target and the residual (mixture minus target) as playable and
downloadable audio with their spectrograms, the processing time and the model's facts.

Only :mod:`bisep.demo.app` imports Gradio (the ``bisep[demo]`` extra); the other modules are
plain functions a script can call without it:

- :mod:`bisep.demo.uploads`: checking an uploaded file and the query fields;
- :mod:`bisep.demo.separation`: one separation as the page shows it (:class:`DemoResult`);
- :mod:`bisep.demo.spectrogram`: the spectrogram images (matplotlib, Agg);
- :mod:`bisep.demo.facts`: what the model was trained on and how it scored;
- :mod:`bisep.demo.examples`: example mixtures (the recipe's test set, or a folder).
"""
