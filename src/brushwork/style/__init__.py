"""Style transfer: the Gatys and AdaIN engines (``transfer``), trained AdaIN decoders read from
their runs (``adain_model``), and file-level stylisation with provenance (``files``)."""
