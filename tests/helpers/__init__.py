"""What the tests share: waiting for a condition of a real server or process, and the random
moments at which the crash tests kill one."""
