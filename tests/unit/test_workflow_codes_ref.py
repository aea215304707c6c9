"""Reference for test_workflow_codes.c (python3-opencv 4.6): the module
matrix of a QR code for "hello vbatch" (cv2.QRCodeEncoder) and the box that
cv2.QRCodeDetector — what Roboflow's qr_code_detector runs — finds when the
code is drawn at 8 px per module with a 4-module white border (Debian's
OpenCV is built without QUIRC: it finds the code but does not decode it;
the text is the one encoded).  Prints the
C lines pasted into test_workflow_codes.c."""
import cv2
import numpy as np

q = cv2.QRCodeEncoder.create().encode('hello vbatch')  # 0 = dark, 255 = light
n = q.shape[0]
rows = [''.join('#' if v == 0 else '.' for v in r) for r in q]
scale, border = 8, 4
img = np.full(((n + 2 * border) * scale,) * 2 + (3,), 255, np.uint8)
for y in range(n):
    for x in range(n):
        if q[y, x] == 0:
            img[(y + border) * scale:(y + border + 1) * scale, (x + border) * scale:(x + border + 1) * scale] = 0
ok, texts, pts, _ = cv2.QRCodeDetector().detectAndDecodeMulti(img)
p = pts[0]
print(f'/* {n}x{n} modules; cv2.QRCodeDetector: {texts[0]!r}, '
      f'xyxy {p[:,0].min():.2f} {p[:,1].min():.2f} {p[:,0].max():.2f} {p[:,1].max():.2f} */')
for r in rows:
    print(f'    "{r}",')
