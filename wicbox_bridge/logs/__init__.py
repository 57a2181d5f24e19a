"""Logging: the rotating log file per configuration, stderr and file logging set up for one
command, and the filter that masks every secret before a line is written.

May use: secret.
"""
