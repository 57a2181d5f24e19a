"""Mail as data: raw MIME bytes to the record of a mail (never raising), outgoing messages to MIME
bytes, and outgoing MIME taken apart again for an API that writes the MIME itself (Graph's drafts).

Pure: no files, network, database or logging (an import-linter contract forbids them), so every
rule is tested with tables and saved .eml files.
May use: errors.
"""
