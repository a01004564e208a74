"""The policy engine: who is calling (:mod:`.principal`), key policies in AWS's language
(:mod:`.document`), grants (:mod:`.grants`), and the one decision every key-scoped call passes
(:mod:`.access`).  Reads keys' rows but never writes them; imports nothing above the key model."""
