"""Mail as data: raw MIME bytes to the record of a mail (never raising), and outgoing messages to
MIME bytes.

Pure: no files, network, database or logging (an import-linter contract forbids them), so every
rule is tested with tables and saved .eml files.
May use: errors.
"""
