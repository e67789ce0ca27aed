"""The hardware noise model: one dataclass, its JSON schema, export and import."""
