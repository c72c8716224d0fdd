"""lrid's benchmarks. Most are scripts (``python benchmarks/<name>.py``); ``benchmarks.foreign`` is a package."""
