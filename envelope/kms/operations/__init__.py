"""The KMS calls, one mix-in per family (keys, naming, crypto, key policies, rotation, grants, imports,
asymmetric keys, regions, credentials), each on :class:`.part.StorePart`; :mod:`envelope.kms.store`
assembles them into the keystore.  A mix-in never imports the keystore."""
