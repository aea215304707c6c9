"""Workflow sinks in batch jobs: webhook_sink through the durable outbox
(each image's notification delivered once, with its idempotency key and the
HMAC signature), local_file_sink confined to --sink-folder (an escaping
target_directory writes nothing; one file per image named after the job,
image and step), environment_secrets_store limited to --secrets-env,
email over SMTP, slack_notification (chat.postMessage, and files_upload_v2
for attachments) against a fake Slack.  The receivers are fixtures
(sink_receivers.py), one per test."""
import http.server
import json
import os
import threading
import time

import pytest

from conftest import MULT, Server
from jobs_helpers import (Receiver, bp, download_export, job_body, put_workflow, results_rows, stage_pngs,
                          verify_signature, wait_job)
from sink_receivers import AnyReceiver, FakeSlack, SmtpReceiver


def hook_wf(url):
    return {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/webhook_sink@v1', 'name': 'hook', 'url': url, 'method': 'POST',
             'json_payload': {'tag': '$inputs.tag', 'what': 'row'}, 'cooldown_seconds': 0},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'hook', 'selector': '$steps.hook.*'}],
    }


def file_wf(target):
    return {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/local_file_sink@v1', 'name': 'file', 'content': '$inputs.tag',
             'output_mode': 'separate_files', 'file_type': 'txt', 'target_directory': target,
             'file_name_prefix': 'row'},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'file', 'selector': '$steps.file.*'}],
    }


SECRETS_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [{'type': 'roboflow_core/environment_secrets_store@v1', 'name': 'sec',
               'variables_storing_secrets': ['VB_E2E_TOKEN']}],
    'outputs': [{'type': 'JsonField', 'name': 'token', 'selector': '$steps.sec.vb_e2e_token'}],
}


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('sinks'))
    sink = os.path.join(d, 'sink')
    os.makedirs(sink)
    s = Server(d, args=['--allow-private-urls', '--sink-folder', sink, '--secrets-env', 'VB_E2E_TOKEN'],
               env={'VB_E2E_TOKEN': 'tok-123', 'VB_E2E_OTHER': 'nope'}).start()
    s.sink = sink
    stage_pngs(s, 'pics', 12)
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def _receiver(cls):
    r = cls()
    yield r
    r.close()


@pytest.fixture
def hook():
    """A webhook receiver (POSTs)."""
    yield from _receiver(Receiver)


@pytest.fixture
def anyrec():
    """An HTTP receiver of GET, POST and PUT."""
    yield from _receiver(AnyReceiver)


@pytest.fixture
def smtp():
    yield from _receiver(SmtpReceiver)


@pytest.fixture
def slack():
    yield from _receiver(FakeSlack)


def test_webhook_sink_delivers_each_row_once(srv, hook):
    put_workflow(srv, 'hook', hook_wf(hook.url))
    r = bp(srv, 'POST', '/sink-hook', job_body('pics', 'hook', spec={'workflowParameters': {'tag': 'T1'}}))
    assert r.status == 200, r
    job = wait_job(srv, 'sink-hook')
    assert job['error'] is False
    rows = results_rows(download_export(srv, 'sink-hook'))
    assert len(rows) == 12
    for row in rows:
        assert row['hook'] == {'error_status': False, 'throttling_status': False,
                               'message': 'Notification sent in the background task'}
    calls = hook.wait(12)
    time.sleep(1.0)  # no late duplicates
    assert len(hook.calls) == 12
    keys = []
    for headers, body in hook.calls:
        assert verify_signature(srv.data, headers, body)
        p = json.loads(body)
        assert p['tag'] == 'T1' and p['what'] == 'row' and p['delivery_attempt'] == 1
        keys.append(p['idempotency_key'])
    assert len(set(keys)) == 12
    assert all(k.startswith('sink-hook/') and k.endswith('/0/hook') for k in keys)
    assert calls is hook.calls


def test_local_file_sink_confined_to_its_folder(srv):
    put_workflow(srv, 'file-ok', file_wf('out/a'))
    r = bp(srv, 'POST', '/sink-file', job_body('pics', 'file-ok', spec={'workflowParameters': {'tag': 'hello'}}))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-file')['error'] is False
    rows = results_rows(download_export(srv, 'sink-file'))
    assert all(row['file'] == {'error_status': False, 'message': 'Data saved successfully'} for row in rows)
    files = os.listdir(os.path.join(srv.sink, 'out', 'a'))
    assert len(files) == 12
    for f in files:
        # one name per job, image, frame and step (a retried task replaces it)
        assert f.startswith('row_sink-file_') and f.endswith('_0_file.txt'), f
        with open(os.path.join(srv.sink, 'out', 'a', f)) as fh:
            assert fh.read() == 'hello\n'
    # escapes: '..', an absolute name, a symbolic link out of the folder
    outside = os.path.join(srv.data, 'outside')
    os.makedirs(outside)
    os.symlink(outside, os.path.join(srv.sink, 'link'))
    for n, target in enumerate(['../escape', '/tmp/abs-escape', 'link', 'out/../../escape2']):
        put_workflow(srv, f'file-bad{n}', file_wf(target))
        job_id = f'sink-bad{n}'
        r = bp(srv, 'POST', f'/{job_id}', job_body('pics', f'file-bad{n}'))
        assert r.status == 200, r
        wait_job(srv, job_id)
        rows = results_rows(download_export(srv, job_id))
        assert len(rows) == 12
        assert all(row['file']['error_status'] is True for row in rows), rows[0]
    assert os.listdir(outside) == []
    assert not os.path.exists(os.path.join(srv.data, 'escape'))
    assert not os.path.exists(os.path.join(srv.data, 'escape2'))
    assert not os.path.exists('/tmp/abs-escape')


def test_environment_secrets_only_allow_listed(srv):
    put_workflow(srv, 'sec', SECRETS_WF)
    r = bp(srv, 'POST', '/sink-sec', job_body('pics', 'sec'))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-sec')['error'] is False
    rows = results_rows(download_export(srv, 'sink-sec'))
    assert len(rows) == 12 and all(row['token'] == 'tok-123' for row in rows)
    other = json.loads(json.dumps(SECRETS_WF))
    other['steps'][0]['variables_storing_secrets'] = ['VB_E2E_OTHER']
    other['outputs'][0]['selector'] = '$steps.sec.vb_e2e_other'
    put_workflow(srv, 'sec-other', other)
    r = bp(srv, 'POST', '/sink-sec-other', job_body('pics', 'sec-other'))
    assert r.status == 200, r
    job = wait_job(srv, 'sink-sec-other')
    assert job['error'] is True
    logs = bp(srv, 'GET', '/sink-sec-other/logs', query={'severity': 'error', 'pageSize': 1000}).json()['logs']
    failed = [e for e in logs if e['logType'] == 'image-processing-failed']
    assert failed  # (the job log keeps the first few per task)
    assert all("cannot read 'VB_E2E_OTHER'" in e['payload']['cause'] for e in failed), failed[0]
    assert 'nope' not in json.dumps(logs)


def test_email_notification_over_smtp(srv, smtp):
    wf = {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/environment_secrets_store@v1', 'name': 'sec',
             'variables_storing_secrets': ['VB_E2E_TOKEN']},
            {'type': 'roboflow_core/email_notification@v1', 'name': 'mail', 'subject': 'Job alert',
             'sender_email': 'cam@example.org', 'receiver_email': ['ops@example.org'],
             'bcc_receiver_email': 'audit@example.org',
             'message': 'Tag {{ $parameters.tag }} seen', 'message_parameters': {'tag': '$inputs.tag'},
             'smtp_server': '127.0.0.1', 'smtp_port': smtp.port,
             'sender_email_password': '$steps.sec.vb_e2e_token', 'cooldown_seconds': 0},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'mail', 'selector': '$steps.mail.*'}],
    }
    put_workflow(srv, 'mail', wf)
    r = bp(srv, 'POST', '/sink-mail', job_body('pics', 'mail', spec={'workflowParameters': {'tag': 'T9'}}))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-mail')['error'] is False
    rows = results_rows(download_export(srv, 'sink-mail'))
    assert len(rows) == 12
    assert all(row['mail'] == {'error_status': False, 'throttling_status': False,
                               'message': 'Notification sent in the background task'} for row in rows), rows[0]
    assert len(smtp.mails) == 12
    ids = set()
    for m in smtp.mails:
        assert m['from'] == '<cam@example.org>'
        assert m['rcpt'] == ['<ops@example.org>', '<audit@example.org>']
        assert m['auth'] == b'\0cam@example.org\0tok-123'
        head, body = m['data'].split('\r\n\r\n', 1)
        hdrs = dict(h.split(': ', 1) for h in head.split('\r\n'))
        assert hdrs['Subject'] == 'Job alert' and hdrs['To'] == 'ops@example.org'
        assert 'Bcc' not in hdrs
        assert body == 'Tag T9 seen'  # (the CRLF before '.' ends DATA)
        ids.add(hdrs['Message-ID'])
    assert len(ids) == 12


def test_email_attachments_over_smtp(srv, smtp):
    """email_notification@v2 with attachments, as Roboflow's SMTP sender builds
    them: multipart/mixed, the text part, then per key an
    application/octet-stream base64 part named by the key (a string as its
    UTF-8 bytes, the image as its JPEG)."""
    import email
    import email.policy
    import cv2
    import numpy as np
    from conftest import png_bytes
    wf = {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/email_notification@v2', 'name': 'mail', 'subject': 'Frames',
             'email_provider': 'Custom SMTP', 'sender_email': 'cam@example.org',
             'receiver_email': 'ops@example.org', 'message': 'Tag {{ $parameters.tag }}',
             'message_parameters': {'tag': '$inputs.tag'},
             'attachments': {'report.csv': 'tag,n\nT9,1\n', 'frame.jpg': '$inputs.image',
                             'tag.txt': '$inputs.tag'},
             'smtp_server': '127.0.0.1', 'smtp_port': smtp.port, 'sender_email_password': 'pw',
             'cooldown_seconds': 0, 'fire_and_forget': False},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'mail', 'selector': '$steps.mail.*'}],
    }
    put_workflow(srv, 'mail-att', wf)
    r = bp(srv, 'POST', '/sink-mail-att', job_body('pics', 'mail-att', spec={'workflowParameters': {'tag': 'T9'}}))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-mail-att')['error'] is False
    rows = results_rows(download_export(srv, 'sink-mail-att'))
    assert len(rows) == 12
    assert all(row['mail'] == {'error_status': False, 'throttling_status': False,
                               'message': 'Notification sent successfully'} for row in rows), rows[0]
    assert len(smtp.mails) == 12
    # the staged noise PNGs as OpenCV's JPEG at Roboflow's quality 95 (JPEG
    # of noise is far from the original; compare JPEG with JPEG)
    refs = []
    for i in range(12):
        png = cv2.imdecode(np.frombuffer(png_bytes(i), np.uint8), cv2.IMREAD_COLOR)
        ok, enc = cv2.imencode('.jpg', png, [cv2.IMWRITE_JPEG_QUALITY, 95])
        refs.append(cv2.imdecode(enc, cv2.IMREAD_COLOR).astype(float))
    matched = set()
    for m in smtp.mails:
        msg = email.message_from_string(m['data'], policy=email.policy.default)
        assert msg.get_content_type() == 'multipart/mixed'
        assert msg['Subject'] == 'Frames' and msg['To'] == 'ops@example.org'
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ['text/plain'] + ['application/octet-stream'] * 3
        assert parts[0].get_content().rstrip('\r\n') == 'Tag T9'
        assert [p.get_filename() for p in parts[1:]] == ['report.csv', 'frame.jpg', 'tag.txt']
        assert all(p.get_content_disposition() == 'attachment' for p in parts[1:])
        assert parts[1].get_payload(decode=True) == b'tag,n\nT9,1\n'
        assert parts[3].get_payload(decode=True) == b'T9'
        jpeg = parts[2].get_payload(decode=True)
        assert jpeg[:3] == b'\xff\xd8\xff'
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (8, 8, 3)
        diffs = sorted((float(np.abs(img.astype(float) - ref).mean()), k) for k, ref in enumerate(refs))
        # the JPEG is of one staged image: (nearly) OpenCV's JPEG of it, far from the others
        assert diffs[0][0] < 3 and diffs[1][0] > 20, diffs[:2]
        matched.add(diffs[0][1])
    assert matched == set(range(12))


def test_webhook_sink_methods_headers_form_and_files(srv, anyrec):
    """PUT with headers, form data and multipart files (Roboflow's
    requests.request(files=, data=)), GET with form data (urlencoded), all
    through the outbox; the image goes as its JPEG; both bodies carry the
    HMAC signature of their exact bytes."""
    import email
    import email.policy
    wf = {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/webhook_sink@v1', 'name': 'put', 'url': anyrec.url, 'method': 'PUT',
             'headers': {'Authorization': 'Bearer user-token', 'X-Tag': '$inputs.tag'},
             'form_data': {'tag': '$inputs.tag', 'n': 3},
             'multi_part_encoded_files': {'image': '$inputs.image', 'note': '$inputs.tag'},
             'cooldown_seconds': 0},
            {'type': 'roboflow_core/webhook_sink@v1', 'name': 'get', 'url': anyrec.url, 'method': 'GET',
             'query_parameters': {'q': 'x'}, 'form_data': {'a b': 'c&d'}, 'cooldown_seconds': 0},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'put', 'selector': '$steps.put.*'},
                    {'type': 'JsonField', 'name': 'get', 'selector': '$steps.get.*'}],
    }
    put_workflow(srv, 'hook-req', wf)
    r = bp(srv, 'POST', '/sink-req', job_body('pics', 'hook-req', spec={'workflowParameters': {'tag': 'T9'}}))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-req')['error'] is False
    rows = results_rows(download_export(srv, 'sink-req'))
    assert all(row['put']['error_status'] is False and row['get']['error_status'] is False for row in rows), rows[0]
    anyrec.wait(24)
    time.sleep(0.5)
    puts = [c for c in anyrec.calls if c[0] == 'PUT']
    gets = [c for c in anyrec.calls if c[0] == 'GET']
    assert len(puts) == 12 and len(gets) == 12, [c[0] for c in anyrec.calls]
    keys = set()
    for _, path, h, body in puts:
        h = {k.lower(): v for k, v in h.items()}
        assert h['authorization'] == 'Bearer user-token'
        assert h['x-tag'] == 'T9'
        assert h['x-vbatch-delivery-attempt'] == '1'
        assert h['idempotency-key'].startswith('sink-req/') and h['idempotency-key'].endswith('/0/put')
        keys.add(h['idempotency-key'])
        assert h['content-type'].startswith('multipart/form-data; boundary=')
        msg = email.message_from_bytes(b'Content-Type: ' + h['content-type'].encode() + b'\r\n\r\n' + body,
                                       policy=email.policy.HTTP)
        parts = {p.get_param('name', header='content-disposition'): p for p in msg.iter_parts()}
        assert parts['tag'].get_content() == 'T9' and parts['n'].get_content() == '3'
        assert parts['note'].get_filename() == 'note' and parts['note'].get_payload(decode=True) == b'T9'
        img = parts['image'].get_payload(decode=True)
        assert parts['image'].get_filename() == 'image' and img[:2] == b'\xff\xd8', img[:8]
        # signed like every other body: the exact multipart bytes
        assert verify_signature(srv.data, h, body), h
    assert len(keys) == 12
    for _, path, h, body in gets:
        h = {k.lower(): v for k, v in h.items()}
        assert path == '/hook?q=x'
        assert h['content-type'] == 'application/x-www-form-urlencoded'
        assert body == b'a%20b=c%26d'
        assert h['authorization'] == 'Bearer rf_default'
        assert verify_signature(srv.data, h, body)


def test_webhook_sink_idempotency_key_cannot_inject_headers(srv, anyrec):
    """The payload's idempotency_key (the user's json_payload may set it)
    goes in the Idempotency-Key header of a non-plain webhook_sink request:
    a CR/LF in it must not add headers (curl sends a header line as is)."""
    wf = {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
        'steps': [
            {'type': 'roboflow_core/webhook_sink@v1', 'name': 'put', 'url': anyrec.url, 'method': 'PUT',
             'headers': {'X-Tag': 't'},
             'json_payload': {'idempotency_key': 'k\r\nX-Injected: yes'},
             'cooldown_seconds': 0},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'put', 'selector': '$steps.put.*'}],
    }
    put_workflow(srv, 'hook-crlf', wf)
    r = bp(srv, 'POST', '/sink-crlf', job_body('pics', 'hook-crlf'))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-crlf')['error'] is False
    anyrec.wait(12)
    time.sleep(0.5)
    puts = [c for c in anyrec.calls if c[0] == 'PUT']
    assert len(puts) == 12, [c[0] for c in anyrec.calls]
    for _, path, h, body in puts:
        h = {k.lower(): v for k, v in h.items()}
        assert 'x-injected' not in h, h
        assert h['x-tag'] == 't'


def slack_wf():
    return {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
                   {'type': 'WorkflowParameter', 'name': 'tag', 'default_value': 'none'}],
        'steps': [
            {'type': 'roboflow_core/environment_secrets_store@v1', 'name': 'sec',
             'variables_storing_secrets': ['VB_E2E_TOKEN']},
            {'type': 'roboflow_core/slack_notification@v1', 'name': 'slack',
             'slack_token': '$steps.sec.vb_e2e_token', 'channel': '#alerts',
             'message': 'Tag {{ $parameters.tag }}', 'message_parameters': {'tag': '$inputs.tag'},
             'cooldown_seconds': 0, 'cooldown_session_key': 'k1'},
        ],
        'outputs': [{'type': 'JsonField', 'name': 'slack', 'selector': '$steps.slack.*'}],
    }


def slack_server(tmp_path, slack, args=()):
    return Server(str(tmp_path), args=['--allow-private-urls', '--secrets-env', 'VB_E2E_TOKEN',
                                       '--slack-api-url', slack.url, *args],
                  env={'VB_E2E_TOKEN': 'xoxb-tok'}).start()


def test_slack_notification_through_outbox(tmp_path, slack):
    """slack_notification@v1: Roboflow's chat.postMessage (channel, text) with
    the workflow's token as a Bearer header, POSTed to the operator's
    --slack-api-url through the durable outbox, once per image."""
    s = slack_server(tmp_path, slack)
    try:
        stage_pngs(s, 'pics', 3)
        put_workflow(s, 'slack', slack_wf())
        r = bp(s, 'POST', '/sink-slack', job_body('pics', 'slack', spec={'workflowParameters': {'tag': 'T7'}}))
        assert r.status == 200, r
        assert wait_job(s, 'sink-slack')['error'] is False
        rows = results_rows(download_export(s, 'sink-slack'))
        assert len(rows) == 3
        assert all(row['slack'] == {'error_status': False, 'throttling_status': False,
                                    'message': 'Notification sent in the background task'} for row in rows), rows[0]
        deadline = time.time() + 60
        while len(slack.posts) < 3 and time.time() < deadline:
            time.sleep(0.05)
        keys = set()
        for headers, msg in slack.posts:
            assert headers['Authorization'] == 'Bearer xoxb-tok'
            assert headers['Content-Type'].startswith('application/json')
            assert msg['channel'] == '#alerts' and msg['text'] == 'Tag T7'
            keys.add(msg['idempotency_key'])
        assert len(keys) == 3
        time.sleep(1)
        assert len(slack.posts) == 3 and not slack.completes and not slack.other  # delivered once each
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


def test_slack_ok_false_is_retried(tmp_path, slack):
    """Slack answers an error with HTTP 200 and "ok": false: that attempt
    failed, and the outbox tries again later (the same message) instead of
    counting it delivered."""
    s = slack_server(tmp_path, slack)
    try:
        stage_pngs(s, 'pics', 1)
        wf = slack_wf()
        wf['steps'][1]['channel'] = '#nope'
        put_workflow(s, 'slack-nope', wf)
        r = bp(s, 'POST', '/sink-slack-nope', job_body('pics', 'slack-nope'))
        assert r.status == 200, r
        assert wait_job(s, 'sink-slack-nope')['error'] is False
        deadline = time.time() + 30
        while len(slack.posts) < 2 and time.time() < deadline:  # backoff 1 s after the first
            time.sleep(0.05)
        assert len(slack.posts) >= 2, slack.posts
        assert len({m['idempotency_key'] for _, m in slack.posts}) == 1
        assert 'chat.postMessage answered error channel_not_found' in s.tail_log(1 << 22)
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


def slack_att_wf(channel='C0123'):
    wf = slack_wf()
    st = wf['steps'][1]
    st['channel'] = channel
    st['attachments'] = {'frame.jpg': '$inputs.image', 'tag.txt': '$inputs.tag'}
    return wf


def test_slack_attachments_files_upload_v2(tmp_path, slack):
    """slack_notification@v1 with attachments: Slack's files_upload_v2 through
    the outbox, once per image: per attachment files.getUploadURLExternal
    (filename, length) and the bytes POSTed to the upload URL Slack answered,
    then one files.completeUploadExternal with the file ids, channel_id and
    the message as initial_comment.  The image goes as its JPEG."""
    import cv2
    import numpy as np
    s = slack_server(tmp_path, slack)
    try:
        stage_pngs(s, 'pics', 4)
        put_workflow(s, 'slack-att', slack_att_wf())
        r = bp(s, 'POST', '/sink-slack-att', job_body('pics', 'slack-att', spec={'workflowParameters': {'tag': 'T8'}}))
        assert r.status == 200, r
        assert wait_job(s, 'sink-slack-att')['error'] is False
        rows = results_rows(download_export(s, 'sink-slack-att'))
        assert len(rows) == 4
        assert all(row['slack']['error_status'] is False for row in rows), rows[0]
        slack.wait_completes(4)
        time.sleep(1.5)  # no late repeats
        assert len(slack.completes) == 4 and len(slack.url_calls) == 8, (slack.completes, slack.url_calls)
        assert not slack.posts and not slack.other
        for h, form in slack.url_calls:
            assert h['Authorization'] == 'Bearer xoxb-tok'
            assert form['filename'] in ('frame.jpg', 'tag.txt')
        # each upload URL got its bytes exactly once, with the length announced
        lengths = {f'F{k + 1:04d}': int(form['length']) for k, (h, form) in enumerate(slack.url_calls)}
        assert sorted(slack.uploads) == sorted(lengths)
        assert all(len(v) == 1 and len(v[0]) == lengths[k] for k, v in slack.uploads.items())
        jpegs = set()
        for h, form in slack.completes:
            assert h['Authorization'] == 'Bearer xoxb-tok'
            assert h['Content-Type'] == 'application/x-www-form-urlencoded'
            assert form['channel_id'] == 'C0123' and form['initial_comment'] == 'Tag T8'
            files = dict(slack.files_of(form))
            assert sorted(files) == ['frame.jpg', 'tag.txt']
            assert files['tag.txt'] == [b'T8']
            jpeg = files['frame.jpg'][0]
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert jpeg[:3] == b'\xff\xd8\xff' and img.shape == (8, 8, 3)
            jpegs.add(jpeg)
        assert len(jpegs) == 4  # one message per image
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


def test_slack_upload_url_passes_the_ssrf_guard(tmp_path):
    """The upload URL comes from Slack's answer: it must pass the same guard as
    every outbound URL.  vbatch may reach 127.0.0.1 only (--url-allowlist);
    the fake Slack there answers upload URLs on 127.0.0.2 where a second
    receiver listens: it must get nothing, and no message is completed."""
    other = http.server.ThreadingHTTPServer(('127.0.0.2', 0), _Count)
    other.hits = []
    threading.Thread(target=other.serve_forever, daemon=True).start()
    slack = FakeSlack(upload_base=f'http://127.0.0.2:{other.server_address[1]}')
    s = Server(str(tmp_path), args=['--url-allowlist', '127.0.0.1/32', '--secrets-env', 'VB_E2E_TOKEN',
                                    '--slack-api-url', slack.url],
               env={'VB_E2E_TOKEN': 'xoxb-tok'}).start()
    try:
        stage_pngs(s, 'pics', 1)
        put_workflow(s, 'slack-ssrf', slack_att_wf())
        r = bp(s, 'POST', '/sink-slack-ssrf', job_body('pics', 'slack-ssrf'))
        assert r.status == 200, r
        assert wait_job(s, 'sink-slack-ssrf')['error'] is False
        deadline = time.time() + 30
        while len(slack.url_calls) < 2 and time.time() < deadline:  # the first attempt and a retry
            time.sleep(0.05)
        assert len(slack.url_calls) >= 2, slack.url_calls
        time.sleep(1)
        assert other.hits == [] and slack.uploads == {} and slack.completes == []
        # refused by the connect-time guard (the sender's thread resolves no
        # name itself: a slow DNS answer would stall every delivery)
        assert 'outbound connection to a non-public address refused' in s.tail_log(1 << 22)
    finally:
        rc = s.stop()
        slack.close()
        other.shutdown()
        other.server_close()
    assert rc == 0, s.tail_log()


class _Count(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *a):
        pass


def test_slack_notification_needs_api_url(srv):
    """Without --slack-api-url the step is an error naming the flag."""
    put_workflow(srv, 'slack-nourl', slack_wf())
    r = bp(srv, 'POST', '/sink-slack-nourl', job_body('pics', 'slack-nourl'))
    assert r.status == 200, r
    assert wait_job(srv, 'sink-slack-nourl')['error'] is True
    logs = bp(srv, 'GET', '/sink-slack-nourl/logs', query={'severity': 'error', 'pageSize': 1000}).json()['logs']
    failed = [e for e in logs if e['logType'] == 'image-processing-failed']
    assert failed
    assert all('--slack-api-url' in e['payload']['cause'] for e in failed), failed[0]


def test_sink_failed_for_good_in_the_job_log(tmp_path):
    """A webhook_sink notification that its receiver refuses every time
    fails for good after the outbox's attempts, and the job's log says so,
    once per image: which image and step, where it went (host:port, never
    the URL's query: it can hold a token), the attempts and the last
    error."""
    rec = Receiver(fail_first=10 ** 6)
    s = Server(str(tmp_path), args=['--allow-private-urls'],
               env={'VBATCH_OUTBOX_MAX_ATTEMPTS': '2', 'VBATCH_OUTBOX_BACKOFF_MS': '100'}).start()
    try:
        names = stage_pngs(s, 'pics', 2)
        put_workflow(s, 'hook-refused', hook_wf(rec.url + '?token=hush'))
        r = bp(s, 'POST', '/sink-refused', job_body('pics', 'hook-refused'))
        assert r.status == 200, r
        assert wait_job(s, 'sink-refused')['error'] is False  # the job itself succeeds

        def failed():
            logs = bp(s, 'GET', '/sink-refused/logs', query={'severity': 'error', 'pageSize': 100}).json()['logs']
            return [lg for lg in logs if lg['logType'] == 'sink-delivery-failed']
        deadline = time.time() + 30 * MULT
        got = failed()
        while len(got) < 2 and time.time() < deadline:
            time.sleep(0.1)
            got = failed()
        assert sorted(lg['payload']['file_path'] for lg in got) == sorted(names), got
        for lg in got:
            assert lg['severity'] == 'error' and lg['reportingModule'] == 'sinks'
            p = lg['payload']
            assert p['step'] == 'hook' and p['attempts'] == 2, p
            assert p['destination'] == f'127.0.0.1:{rec.httpd.server_address[1]}', p
            assert p['error'] == 'http status 503', p
            assert 'hush' not in json.dumps(lg)
        assert len(rec.calls) == 4  # 2 images x 2 attempts
        time.sleep(0.5)
        assert len(failed()) == 2  # once each
    finally:
        rec.close()
        rc = s.stop()
    assert rc == 0, s.tail_log()
