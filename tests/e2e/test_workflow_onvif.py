"""onvif_sink@v1 in batch jobs against a fake ONVIF PTZ camera (Python's
http.server answering SOAP 1.2): each request's WS-Security password
digest is checked with hashlib (base64(sha1(nonce + created + password))),
an image job configures the camera and sends the ContinuousMove Roboflow's
arithmetic gives for the box, a video job configures it once for the whole
video, an unreachable camera fails every image with the cause, and a
camera on a loopback address is refused unless the operator allows private
addresses (the SSRF guard of every outbound URL)."""
import base64
import hashlib
import http.server
import json
import os
import re
import socket
import threading

import pytest

from jobs_helpers import bp, download_export, job_body, put_workflow, results_rows, stage_pngs, wait_job

PASSWORD = 'pa<ss>'
VID = '/usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4'


def soap(body):
    return ('<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
            'xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
            'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl"><SOAP-ENV:Body>' + body +
            '</SOAP-ENV:Body></SOAP-ENV:Envelope>').encode()


class Camera:
    """Records (path, operation, velocity) of each request; 401 for a bad digest."""

    def __init__(self):
        self.calls = []
        self.bad_auth = 0
        self.faults = {}  # operation -> the reason (bytes) of an HTTP 500 SOAP fault
        cam = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n).decode()
                action = re.search(r'action="([^"]+)"', self.headers.get('Content-Type', ''))
                op = action.group(1).rsplit('/', 1)[1] if action else ''
                nonce = re.search(r'<wsse:Nonce[^>]*>([^<]+)<', body).group(1)
                created = re.search(r'<wsu:Created>([^<]+)<', body).group(1)
                digest = re.search(r'#PasswordDigest">([^<]+)<', body).group(1)
                want = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode() +
                                                     PASSWORD.encode()).digest()).decode()
                user = re.search(r'<wsse:Username>([^<]+)<', body).group(1)
                if digest != want or user != 'admin':
                    cam.bad_auth += 1
                    self.reply(401, b'')
                    return
                vel = None
                m = re.search(r'<tt:PanTilt x="([^"]+)" y="([^"]+)"/><tt:Zoom x="([^"]+)"/>', body)
                if m:
                    vel = tuple(float(v) for v in m.groups())
                cam.calls.append((self.path, op, vel))
                if op in cam.faults:
                    self.reply(500, soap('<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Receiver'
                                         '</SOAP-ENV:Value></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text>')
                               .split(b'</SOAP-ENV:Body>')[0] + cam.faults[op] +
                               b'</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>')
                    return
                host = f'127.0.0.1:{self.server.server_address[1]}'
                answers = {
                    'GetCapabilities':
                        '<tds:GetCapabilitiesResponse><tds:Capabilities>'
                        f'<tt:Media><tt:XAddr>http://{host}/onvif/media_service</tt:XAddr></tt:Media>'
                        f'<tt:PTZ><tt:XAddr>http://{host}/onvif/ptz_service</tt:XAddr></tt:PTZ>'
                        '</tds:Capabilities></tds:GetCapabilitiesResponse>',
                    'GetProfiles':
                        '<trt:GetProfilesResponse><trt:Profiles token="Profile_1"><tt:Name>main</tt:Name>'
                        '<tt:PTZConfiguration token="PTZ_1"/></trt:Profiles></trt:GetProfilesResponse>',
                    'GetConfigurationOptions':
                        '<tptz:GetConfigurationOptionsResponse><tptz:PTZConfigurationOptions><tt:Spaces>'
                        '<tt:ContinuousPanTiltVelocitySpace><tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max>'
                        '</tt:XRange><tt:YRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:YRange>'
                        '</tt:ContinuousPanTiltVelocitySpace></tt:Spaces></tptz:PTZConfigurationOptions>'
                        '</tptz:GetConfigurationOptionsResponse>',
                    'GetPresets':
                        '<tptz:GetPresetsResponse><tptz:Preset token="1"><tt:Name>home</tt:Name></tptz:Preset>'
                        '</tptz:GetPresetsResponse>',
                }
                self.reply(200, soap(answers.get(op, f'<tptz:{op}Response/>')))

            def reply(self, code, data):
                self.send_response(code)
                self.send_header('Content-Type', 'application/soap+xml; charset=utf-8')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ops(self):
        return [c[1] for c in self.calls]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def onvif_wf(port, box='[0, 750, 250, 1000]'):
    """A gemini-format detection (box_2d [y_min, x_min, y_max, x_max] on
    0..1000) given as a parameter, followed by the camera."""
    return {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'vlm',
                    'default_value': f'[{{"box_2d": {box}, "label": "a", "confidence": 0.9}}]'}],
        'steps': [
            {'type': 'roboflow_core/vlm_as_detector@v2', 'name': 'det', 'image': '$inputs.image',
             'vlm_output': '$inputs.vlm', 'classes': ['a'], 'model_type': 'google-gemini',
             'task_type': 'object-detection'},
            {'type': 'roboflow_core/onvif_sink@v1', 'name': 'ptz', 'predictions': '$steps.det.predictions',
             'camera_ip': '127.0.0.1', 'camera_port': port, 'camera_username': 'admin',
             'camera_password': PASSWORD, 'dead_zone': 1},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'seeking', 'selector': '$steps.ptz.seeking'}],
    }


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def cam():
    c = Camera()
    yield c
    c.close()


def test_image_job_moves_the_camera(server_factory, cam):
    s = server_factory(['--allow-private-urls']).start()
    stage_pngs(s, 'ptz', 3)
    put_workflow(s, 'ptz', onvif_wf(cam.port))
    r = bp(s, 'POST', '/ptz1', job_body('ptz', 'ptz'))
    assert r.status == 200, r
    job = wait_job(s, 'ptz1')
    assert job['error'] is False, job
    rows = results_rows(download_export(s, 'ptz1'))
    assert len(rows) == 3 and all(row['seeking'] is True for row in rows), rows
    assert cam.bad_auth == 0
    # each image has its own state: configured, then one move.  On an 8x8
    # image the box is x 6..8, y 0..2: centre offset (-3, 3) / 8; Roboflow's
    # first PID output is kp * 0.375 = 0.09375 on both axes, negated for x
    # (flip_x off) and kept for y (flip_y on) with its negative sign
    assert cam.ops() == ['GetCapabilities', 'GetProfiles', 'GetConfigurationOptions', 'GetPresets',
                         'ContinuousMove'] * 3, cam.ops()
    paths = {c[1]: c[0] for c in cam.calls}
    assert paths['GetCapabilities'] == '/onvif/device_service'
    assert paths['GetProfiles'] == '/onvif/media_service' and paths['ContinuousMove'] == '/onvif/ptz_service'
    moves = [c[2] for c in cam.calls if c[1] == 'ContinuousMove']
    assert moves == [(-0.09375, -0.09375, 0.0)] * 3, moves


@pytest.mark.skipif(not os.path.exists(VID), reason='python3-imageio video missing')
def test_video_job_configures_once_and_follows(server_factory, cam):
    s = server_factory(['--allow-private-urls']).start()
    r = s.ds('POST', '/ptzv/upload/video', query={'fileName': 'a.mp4', 'displayName': 'ptzv'})
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    with open(VID, 'rb') as f:
        put = s.raw('PUT', d['uploadURL'], body=f.read(), headers=d.get('extensionHeaders') or {})
    assert put.status == 200, put
    s.wait_count('ptzv', 1)  # on object storage the arrival is noticed by the poller
    put_workflow(s, 'ptzv', onvif_wf(cam.port))
    b = job_body('ptzv', 'ptzv')
    b['type'] = 'simple-video-processing-v1'
    r = bp(s, 'POST', '/ptzv1', b)
    assert r.status == 200, r
    job = wait_job(s, 'ptzv1')
    assert job['error'] is False, job
    rows = results_rows(download_export(s, 'ptzv1'))
    assert len(rows) == 36 and all(row['seeking'] is True for row in rows)
    ops = cam.ops()
    # one state for the video: configured once; the first frame moves (a
    # first PID call on 320x240: box x 240..320, y 0..60, centre offset
    # (-120, 90) normalised (-0.375, 0.375) -> outputs kp * 0.375 = 0.09375;
    # the smaller axis at 90 / 120 of it: y = -0.0703125)
    assert ops[:5] == ['GetCapabilities', 'GetProfiles', 'GetConfigurationOptions', 'GetPresets',
                       'ContinuousMove'], ops
    assert ops.count('GetCapabilities') == 1 and set(ops[4:]) == {'ContinuousMove'}, ops
    assert cam.calls[4][2] == (-0.09375, -0.0703125, 0.0)
    # the 250 ms rate limit holds the other 35 frames' commands to a few
    assert len(ops) - 4 < 36


def test_unreachable_camera_fails_each_image(server_factory):
    s = server_factory(['--allow-private-urls']).start()
    stage_pngs(s, 'ptzx', 2)
    port = free_port()
    put_workflow(s, 'ptzx', onvif_wf(port))
    r = bp(s, 'POST', '/ptzx1', job_body('ptzx', 'ptzx'))
    assert r.status == 200, r
    job = wait_job(s, 'ptzx1')
    assert job['error'] is True, job
    exp = download_export(s, 'ptzx1')
    errs = [json.loads(x) for x in exp['files']['errors']['errors.jsonl'].decode().splitlines()]
    assert len(errs) == 2
    for e in errs:
        assert f"step 'ptz': ONVIF camera 127.0.0.1:{port}: Error connecting to camera at 127.0.0.1:{port}: " \
               "GetCapabilities: " in e['cause'], e


def test_loopback_camera_refused_without_the_operators_allowance(server_factory, cam):
    s = server_factory([]).start()
    stage_pngs(s, 'ptzg', 1)
    put_workflow(s, 'ptzg', onvif_wf(cam.port))
    r = bp(s, 'POST', '/ptzg1', job_body('ptzg', 'ptzg'))
    assert r.status == 200, r
    job = wait_job(s, 'ptzg1')
    assert job['error'] is True, job
    exp = download_export(s, 'ptzg1')
    errs = [json.loads(x) for x in exp['files']['errors']['errors.jsonl'].decode().splitlines()]
    assert len(errs) == 1 and 'Error connecting to camera' in errs[0]['cause'], errs
    assert cam.calls == [] and cam.bad_auth == 0


@pytest.mark.parametrize('reason', [
    # a long reason in Chinese: the step error's 512-byte buffers cut it inside a character
    ('\u8bbe\u5907\u5185\u90e8\u9519\u8bef' * 60).encode(),
    # a camera answering in Latin-1, not UTF-8
    'Ger\u00e4t nicht bereit'.encode('latin-1'),
], ids=['cut', 'latin1'])
def test_camera_fault_text_that_is_not_utf8_fails_the_image(server_factory, cam, reason):
    """The SOAP fault's reason goes into the image's cause: bytes that are
    not UTF-8 (or a character cut by the message buffers) are replaced, the
    errors file is written and the job ends (the worker used to crash on
    the errors line that jansson refused)."""
    cam.faults['GetCapabilities'] = reason
    s = server_factory(['--allow-private-urls']).start()
    stage_pngs(s, 'ptzu', 2)
    put_workflow(s, 'ptzu', onvif_wf(cam.port))
    r = bp(s, 'POST', '/ptzu1', job_body('ptzu', 'ptzu'))
    assert r.status == 200, r
    job = wait_job(s, 'ptzu1')
    assert job['error'] is True, job
    exp = download_export(s, 'ptzu1')
    errs = [json.loads(x) for x in exp['files']['errors']['errors.jsonl'].decode().splitlines()]
    assert len(errs) == 2, errs
    for e in errs:
        assert 'GetCapabilities: HTTP 500: ' in e['cause'], e
        assert e['cause'].startswith('workflow error: ') and '\ufffd' not in e['cause'], e
    assert cam.bad_auth == 0
