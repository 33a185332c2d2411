"""Command-line tools: each module has main(argv) -> int and stays thin."""
