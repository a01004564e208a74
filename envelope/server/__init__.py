"""The local keystore served over the AWS KMS JSON 1.1 protocol (``envelope keys serve``)."""
