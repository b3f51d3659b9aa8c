"""Command-line entry point for a source checkout: ``python cli.py verify MODEL SPEC``.

The installed console script ``verifier`` reaches the same Click application through
``verifier.cli:main``; this file is not installed (a top-level ``cli`` module would clash).
"""

from verifier.cli import main

if __name__ == "__main__":
    main()
