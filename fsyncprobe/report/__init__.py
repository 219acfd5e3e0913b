"""The report every command produces: its types, the JSON codec and the shipped JSON Schema."""
