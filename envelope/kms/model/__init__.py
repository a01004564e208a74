"""The key model: what a key is and says (metadata, ids, ARNs, aliases, tags), the states and schedules
it lives through (:mod:`.lifecycle`), and the clock those run on.  Imports nothing else of the KMS."""
