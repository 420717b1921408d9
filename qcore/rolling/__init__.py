"""Rolling retraining: windows (:mod:`qcore.rolling.windows`), one window's training (:mod:`qcore.rolling.window`),
the checkpoint a run resumes from (:mod:`qcore.rolling.checkpoint`) and the workflow step that runs them all
(:mod:`qcore.rolling.step`). Online serving, DDG-DA and sample weights come later."""
