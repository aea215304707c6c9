#!/usr/bin/python3
"""Reference values of tests/unit/test_workflow_onvif.c.

- The WS-Security password digest as python-onvif's zeep UsernameToken
  computes it: base64(sha1(nonce + created + password)) with hashlib.
- The ContinuousMove velocities of Roboflow's onvif_sink@v1
  (roboflow/inference core_steps/sinks/onvif_movement/v1.py: move_camera
  and continuous_move_async) for the scripted frames of the test, with
  simple_pid's PID (setpoint 0, output_limits (-1, 1), proportional on
  error, derivative on measurement: the library's defaults) written out
  below because Debian has no python3-simple-pid.  Times are the test's
  fake clock.  Run with /usr/bin/python3; the test does not run it."""
import base64
import hashlib

import numpy as np

nonce = bytes(range(16))
created = "2026-12-06T12:00:00+00:00"
print("digest", base64.b64encode(hashlib.sha1(nonce + created.encode() + "p@ss<&>".encode()).digest()).decode())
print("nonce", base64.b64encode(nonce).decode())


class PID:
    """simple_pid.PID.__call__ with setpoint 0 and limits (-1, 1)."""

    def __init__(self, t):
        self.last_time, self.last_input, self.integral = t, None, 0.0

    def __call__(self, x, t, kp, ki, kd):
        dt = t - self.last_time if (t - self.last_time) else 1e-16
        error = 0 - x
        d_input = x - (self.last_input if self.last_input is not None else x)
        prop = kp * error
        self.integral = min(max(self.integral + ki * error * dt, -1), 1)
        deriv = -kd * d_input / dt
        out = min(max(prop + self.integral + deriv, -1), 1)
        self.last_input, self.last_time = x, t
        return out


# the scenario of TEST(onvif_follow_moves_as_roboflow): 640 x 480, dead
# zone 50, kp 0.25 ki 0.1 kd 0.01, minimum speed 0.05, flip_y (default),
# limits x -1..1, y -0.5..0.8 (Roboflow picks y's limit by x's sign)
W, H, DZ, KP, KI, KD, MIN = 640, 480, 50, 0.25, 0.1, 0.01, 0.05
XMIN, XMAX, YMIN, YMAX = -1.0, 1.0, -0.5, 0.8
t0 = 10.0
px, py = PID(t0), PID(t0)


def move(box, t):
    x1, y1, x2, y2 = box
    c = (x1 + (x2 - x1) / 2, y1 + (y2 - y1) / 2)
    delta = np.array([W / 2 - c[0], H / 2 - c[1]])
    ad = np.abs(delta)
    if np.all(ad < DZ):
        return "stop"
    nd = delta / np.array([W, H])
    ox, oy = px(nd[0], t, KP, KI, KD), py(nd[1], t, KP, KI, KD)
    if abs(ox) < MIN:
        ox = MIN * np.sign(ox)
    if abs(oy) < MIN:
        oy = MIN * np.sign(oy)
    sp = abs(delta / ad.max())
    x = sp[0] * ox if ad[0] > DZ else 0
    y = sp[1] * oy if ad[1] > DZ else 0
    x, y = -x, y * 1  # flip_x False -> -1, flip_y True -> 1
    xl = XMIN if x < 0 else XMAX
    yl = YMIN if x < 0 else YMAX
    return abs(xl) * x, abs(yl) * y


# boxes as the test's gemini box_2d [y_min, x_min, y_max, x_max] / 1000
def gem(b):
    return (b[1] / 1000 * W, b[0] / 1000 * H, b[3] / 1000 * W, b[2] / 1000 * H)


for name, b, t in [("f1", [500, 700, 750, 800], 10.0), ("f2", [450, 550, 650, 700], 10.1),
                   ("f2b", [450, 550, 650, 700], 10.2),
                   ("f3", [450, 500, 600, 650], 10.4), ("f5", [100, 50, 300, 250], 11.0)]:
    box = tuple(float(round(v)) for v in gem(b))  # the parser rounds half to even
    print(name, box, move(box, t))

# TEST(onvif_zoom_mode): the zoom PID (same constants) on the normalised
# zoom delta |200 - 50 / 2| / 640 at 50.0 s, 50.1 s and 52.2 s; z = -output
pz = PID(50.0)
nz = abs(200 - DZ / 2) / max(W, H)
for t in (50.0, 50.1, 52.2):
    out = pz(nz, t, KP, KI, KD)
    if abs(out) < MIN:
        out = MIN * np.sign(out)
    print("zoom", t, -out)
