"""FakeChain -> FakeInstruct: plan, expand, write shards in the chosen output format."""
