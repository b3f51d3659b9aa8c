"""Deciding: falsification (``falsify``), input splitting (``input_split``, ``parallel``), LP
tightening (``tighten``) and the bound-query API (``query``): what needs both the bound methods and
the MILP / LP encodings lives here."""
