"""Statistics: the bounded-memory latency histogram and its summaries."""
