"""qdata_cn: the China A-share market adapter for qcore.

- :class:`qdata_cn.binstore.QlibBinProvider` reads Qlib bin stores as whole panels (provider ``qlib_bin``);
- :mod:`qdata_cn.importer`, :mod:`qdata_cn.exporter`, :mod:`qdata_cn.check` and :mod:`qdata_cn.writer` import,
  export, check and atomically write them (``qcore data import|export|check``);
- :mod:`qdata_cn.synth` writes a realistic synthetic A-share market (``qcore data synth``), qcore's default data;
- :class:`qdata_cn.rules.CNMarketRules` supplies A-share trading rules (market rules ``cn``).

Importing the package imports nothing heavy; the hooks live in :mod:`qdata_cn.plugin`.
"""

__all__: list[str] = []
