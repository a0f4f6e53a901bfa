"""The systems a benchmark run measures side by side, each started and stopped by the run itself."""
