"""Machine drafts of FakeChain records: image measurements -> label-blind evidence -> reasoning."""
