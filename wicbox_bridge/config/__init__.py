"""Configuration: WicGlobal.config, connection strings, the WICMan parameters, where files live.

Turns text into frozen, validated settings (GlobalConfig, DatabaseTarget, Parameters) and names the
places of the embedded database and the state directories. Reads the configuration file; no
network, no database.
May use: errors, secret.
"""
