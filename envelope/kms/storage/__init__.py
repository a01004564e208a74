"""The storage: where the keystore file lives and how it is protected (:mod:`.paths`), the wrapping
key it is sealed under (:mod:`.protection`), its SQLite schema (:mod:`.schema`), connection and
audited transactions (:mod:`.db`), and the backing keys sealed in it (:mod:`.material`)."""
