"""The verdict: profiles (what to measure, which thresholds), the rules that turn measurements into
findings, and the verdict types."""
