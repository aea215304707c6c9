#!/usr/bin/python3
"""Reference UTC offsets for tests/unit/test_workflow_time.c: Python's
zoneinfo (what Roboflow's current_time block uses) at fixed instants.
Run: /usr/bin/python3 tests/unit/test_workflow_time_ref.py"""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

INSTANTS = [1767225600, 1782864000, 946684800, 2145916800]  # 2026-01-01, 2026-07-01, 2000-01-01, 2038-01-01 UTC
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Chatham", "America/St_Johns", "Etc/GMT+12", "Pacific/Kiritimati"]

if __name__ == "__main__":
    for z in ZONES:
        offs = [int(datetime.fromtimestamp(t, timezone.utc).astimezone(ZoneInfo(z)).utcoffset().total_seconds())
                for t in INSTANTS]
        print('{"%s", {%s}},' % (z, ", ".join(str(o) for o in offs)))
    print(datetime.fromtimestamp(1782864000.25, timezone.utc).astimezone(ZoneInfo("Asia/Kathmandu")).isoformat())
