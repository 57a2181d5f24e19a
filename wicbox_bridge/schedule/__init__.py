"""``wicbox schedule``: the scheduler entry that starts ``wicbox run`` every few minutes, and the
service that keeps ``wicbox relay`` running where it is installed with ``--relay``.

Pure generators (the Windows task XML, the systemd units, the cron line, the command lines of
``schtasks`` and ``systemctl``) are kept apart from the few functions that write files and run those
commands, so that what ``show`` prints is exactly what ``install`` installs.
May use: run (the run lock, to wait for a busy run), config, errors, secret.
"""
