"""Multi-file models over HTTP and the CLI (issue 13 item 5): the real
PP-OCRv4 model (det.onnx + rec.onnx + dict.txt; $VBATCH_OCR_DIR, default
~/.cache/vbatch/ocr/ppocr-v4, laid out by scripts/fetch-ocr.sh) registered
as a workspace's `pp_ocr` with a multipart form of three files, stored as
one bundle blob (model.tar), found again after a restart and used by a
batch job running roboflow_core/pp_ocr@v1; `vbatch model register ID DIR`
storing an OCR folder; malformed forms refused with 400 and a JSON error
naming the problem.  Skips (with the reason) only when the weights could
not be fetched."""
import json
import os

import pytest

from conftest import Server, db_rows, multipart
from jobs_helpers import bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job
from test_ocr import OCR_DIR, render
from test_models_api import model_blobs

MR = '/models/v1/external'
FILES = ('det.onnx', 'rec.onnx', 'dict.txt')

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(OCR_DIR, f)) for f in FILES),
    reason=f'PP-OCR weights not in {OCR_DIR} (scripts/fetch-ocr.sh could not fetch them)')


def _read(name):
    with open(os.path.join(OCR_DIR, name), 'rb') as f:
        return f.read()


def put_form(s, model_id, fields):
    ctype, body = multipart(fields)
    return s.request('PUT', f'{MR}/{s.workspace}/models/{model_id}', body=body, headers={'Content-Type': ctype})


def ocr_fields(metadata=None):
    # parts named by file name, as `curl -F det.onnx=@det.onnx ...` sends them
    f = [(n, n, _read(n)) for n in FILES]
    if metadata is not None:
        f.append(('metadata', None, json.dumps(metadata).encode()))
    return f


def test_ocr_registered_over_http_survives_restart_and_runs_a_job(tmp_path):
    s = Server(str(tmp_path), args=['--allow-private-urls'], env=ort_env(str(tmp_path))).start()
    data = s.data
    try:
        r = put_form(s, 'pp_ocr', ocr_fields({'aliases': ['my-ocr']}))
        assert r.status == 200, r
        d = r.json()
        assert d['task'] == 'ocr' and d['scope'] == 'workspace', d
        assert d['aliases'] == ['my-ocr'], d
        assert d['details']['files'] == list(FILES), d
        assert d['details']['dictionary_size'] == 6623, d
        # one bundle blob + the metadata, under the workspace's generation folder
        blobs = model_blobs(data, 'pp_ocr', ws=s.workspace)
        assert len(blobs) == 2 and blobs[0].endswith('/metadata.json') and blobs[1].endswith('/model.tar'), blobs
        row = db_rows(data, 'SELECT weights_key, size FROM models WHERE model_id=?', ('pp_ocr',))[0]
        assert row[0].endswith('/model.tar') and row[1] > sum(len(_read(n)) for n in FILES), row
    finally:
        assert s.stop() == 0, s.tail_log()

    # a fresh process loads it from the blob store (restart)
    s.start()
    try:
        r = s.request('GET', f'{MR}/{s.workspace}/models/my-ocr')
        assert r.status == 200, r
        assert r.json()['modelId'] == 'pp_ocr' and r.json()['task'] == 'ocr', r.json()
        put_workflow(s, 'ocr', {
            'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [{'type': 'roboflow_core/pp_ocr@v1', 'name': 'pp', 'images': '$inputs.image'}],
            'outputs': [{'type': 'JsonField', 'name': 'text', 'selector': '$steps.pp.result'}]})
        texts = ['INVOICE 2041', 'Total: 42.50']
        for i, t in enumerate(texts):
            assert s.upload_image('mfpics', f't{i}.png', render([t])).status == 200
        assert s.wait_count('mfpics', len(texts)) == len(texts)
        r = bp(s, 'POST', '/e2e-mf-ocr', job_body('mfpics', 'ocr'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-mf-ocr', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-mf-ocr'))
        got = sorted(row['text'].replace(' ', '') for row in rows)
        assert got == sorted(t.replace(' ', '') for t in texts), rows
    finally:
        assert s.stop() == 0, s.tail_log()


def test_cli_registers_an_ocr_folder(tmp_path):
    folder = tmp_path / 'ocr'
    folder.mkdir()
    # other file names, given by model.json's roles
    for role, src, dst in (('detector', 'det.onnx', 'd.onnx'), ('recognizer', 'rec.onnx', 'r.onnx'),
                           ('dictionary', 'dict.txt', 'keys.txt')):
        os.symlink(os.path.join(OCR_DIR, src), folder / dst)
    (folder / 'model.json').write_text(json.dumps({'family': 'ocr', 'detector': 'd.onnx', 'recognizer': 'r.onnx',
                                                   'dictionary': 'keys.txt', 'aliases': ['cli-ocr']}))
    s = Server(str(tmp_path), args=['--allow-private-urls'], env=ort_env(str(tmp_path))).start()
    data = s.data
    try:
        p = s.cli('model', 'register', 'ocr/2', str(folder))
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith('registered: ocr/2\tocr\t'), p.stdout
        blobs = model_blobs(data, 'ocr--2')
        assert len(blobs) == 2 and blobs[1].endswith('/model.tar'), blobs
        # the running server finds it (another process wrote it)
        r = s.request('GET', f'{MR}/{s.workspace}/models/cli-ocr')
        assert r.status == 200, r
        assert r.json()['modelId'] == 'ocr/2' and r.json()['scope'] == 'operator', r.json()
        assert r.json()['details']['files'] == list(FILES), r.json()
        p = s.cli('model', 'list')
        assert p.returncode == 0 and 'ocr/2\tocr\t' in p.stdout, (p.stdout, p.stderr)
        # a folder missing its dictionary: refused, nothing stored
        bad = tmp_path / 'bad'
        bad.mkdir()
        for f in ('det.onnx', 'rec.onnx'):
            os.symlink(os.path.join(OCR_DIR, f), bad / f)
        p = s.cli('model', 'register', 'ocr-bad', str(bad))
        assert p.returncode == 1 and 'dict.txt' in p.stderr, p.stderr
        assert model_blobs(data, 'ocr-bad') == []
    finally:
        assert s.stop() == 0, s.tail_log()


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('models-mf'))
    s = Server(d, args=['--allow-private-urls', '--max-model-bytes', str(20 << 20)], env=ort_env(d)).start()
    yield s
    assert s.stop() == 0, s.tail_log()


def refused(r, status, *words):
    assert r.status == status, r
    msg = r.json()['error']
    for w in words:
        assert w in msg, (w, msg)
    return msg


def test_malformed_forms_refused(srv):
    det, rec, dic = (_read(n) for n in FILES)
    # no dictionary
    refused(put_form(srv, 'mf-a', [('det.onnx', 'det.onnx', det), ('rec.onnx', 'rec.onnx', rec)]), 400,
            "the model has no file 'dict.txt'")
    # files that make no known model
    refused(put_form(srv, 'mf-b', [('a.onnx', 'a.onnx', det), ('b.bin', 'b.bin', b'x')]), 400,
            'the files a.onnx, b.bin make no multi-file model')
    # two files of one name (a part's filename gives the name when its name has no dot)
    refused(put_form(srv, 'mf-c', [('files', 'det.onnx', det), ('det.onnx', None, det)]), 400,
            "two files named 'det.onnx'")
    # a name that is not accepted
    refused(put_form(srv, 'mf-d', [('files', 'bad name.onnx', det), ('rec.onnx', None, rec)]), 400,
            "file name 'bad name.onnx'")
    refused(put_form(srv, 'mf-d', [('.hidden', None, det), ('rec.onnx', None, rec)]), 400, "file name '.hidden'")
    # too many files
    refused(put_form(srv, 'mf-e', [(f'f{i}.txt', None, b'x') for i in range(17)]), 400, 'more than 16 files')
    # an empty file among several
    refused(put_form(srv, 'mf-f', [('det.onnx', None, det), ('rec.onnx', None, rec), ('dict.txt', None, b'')]),
            400, "file 'dict.txt' of the form is empty")
    # two metadata parts
    refused(put_form(srv, 'mf-g', ocr_fields({}) + [('metadata', None, b'{}')]), 400, 'two "metadata" parts')
    # a detector that is not ONNX
    refused(put_form(srv, 'mf-h', [('det.onnx', None, b'not onnx' * 100), ('rec.onnx', None, rec),
                                   ('dict.txt', None, dic)]), 400, 'text detector (det.onnx)')
    # a family vbatch does not know
    refused(put_form(srv, 'mf-i', ocr_fields({'family': 'nope'})), 400, "metadata 'family' is 'nope'")
    # all files together over --max-model-bytes (20 MiB)
    refused(put_form(srv, 'mf-j', ocr_fields() + [('pad.bin', None, b'\0' * (6 << 20))]), 413, 'over the limit')
    # nothing of it was stored
    r = srv.request('GET', f'{MR}/{srv.workspace}/models')
    assert r.status == 200 and not [m for m in r.json()['models'] if m['modelId'].startswith('mf-')], r.json()
    # a single file part is still the ONNX model of a single-file upload
    r = put_form(srv, 'mf-single', [('det.onnx', None, det)])
    refused(r, 400, 'no class names')
