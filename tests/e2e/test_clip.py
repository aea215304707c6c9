"""CLIP end to end: the replica tests/data/models/clip-tiny (visual.onnx +
textual.onnx + merges.txt + model.json naming it clip/ViT-B-16 with the
alias clip/ViT-B-32; scripts/models/make-clip-models.py) sits in the
server's --models-dir; a batch job runs roboflow_core/clip@v1 on the image
and on a text, cosine_similarity@v1 of the two and clip_comparison@v2 over
staged pictures, and the exported rows carry the embeddings as lists of
floats (as Roboflow's blocks serialise them) — the replica's own test
picture's equal to PyTorch's (test/torch.json) within 1e-4.  A CLIP folder
with a NaN text encoder is skipped at start with the registry's reason, and
a job that needs it fails its images saying the model is not registered."""
import io
import json
import math
import os
import shutil

from conftest import Server, multipart
from jobs_helpers import bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, '..', 'data', 'models', 'clip-tiny')
BAD = os.path.join(HERE, '..', 'data', 'models', 'clip-bad')
CLASSES = ['a photo of a cat', 'a red car on the road', 'zebra']

WORKFLOW = {
    'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/clip@v1', 'name': 'ei', 'data': '$inputs.image'},
        {'type': 'roboflow_core/clip@v1', 'name': 'et', 'data': CLASSES[0], 'version': 'ViT-B-16'},
        {'type': 'roboflow_core/cosine_similarity@v1', 'name': 'cs',
         'embedding_1': '$steps.ei.embedding', 'embedding_2': '$steps.et.embedding'},
        {'type': 'roboflow_core/clip_comparison@v2', 'name': 'cc', 'images': '$inputs.image',
         'classes': CLASSES},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'emb', 'selector': '$steps.ei.embedding'},
        {'type': 'JsonField', 'name': 'temb', 'selector': '$steps.et.embedding'},
        {'type': 'JsonField', 'name': 'cos', 'selector': '$steps.cs.similarity'},
        {'type': 'JsonField', 'name': 'sims', 'selector': '$steps.cc.similarities'},
        {'type': 'JsonField', 'name': 'top', 'selector': '$steps.cc.most_similar_class'},
        {'type': 'JsonField', 'name': 'cls', 'selector': '$steps.cc.classification_predictions'},
    ]}


def models_dir(base, broken=False):
    d = os.path.join(base, 'models', 'clip--ViT-B-16')
    os.makedirs(d)
    for f in ('visual.onnx', 'textual.onnx', 'merges.txt', 'model.json'):
        shutil.copy(os.path.join(TINY, f), os.path.join(d, f))
    if broken:
        shutil.copy(os.path.join(BAD, 'textual-nan.onnx'), os.path.join(d, 'textual.onnx'))
    return os.path.join(base, 'models')


def picture(seed):
    from PIL import Image
    img = Image.new('RGB', (160 + 40 * seed, 120), (30 * seed, 200 - 40 * seed, 90))
    for x in range(0, img.size[0], 7):
        img.putpixel((x, (x * (seed + 3)) % 120), (255, 255, 255))
    b = io.BytesIO()
    img.save(b, 'PNG')
    return b.getvalue()


def cosine(a, b):
    d = sum(x * y for x, y in zip(a, b))
    return d / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def start(base, broken=False):
    os.makedirs(os.path.join(base, 'data'))
    return Server(os.path.join(base, 'data'),
                  args=['--allow-private-urls', '--models-dir', models_dir(base, broken)],
                  env=ort_env(base)).start()


def test_clip_blocks_in_a_batch_job(tmp_path):
    s = start(str(tmp_path))
    ref = json.load(open(os.path.join(TINY, 'test', 'torch.json')))
    try:
        assert "registered CLIP model 'clip/ViT-B-16'" in s.tail_log()
        put_workflow(s, 'clip', WORKFLOW)
        pics = [open(os.path.join(TINY, 'test', 'picture.png'), 'rb').read()] + \
            [picture(i) for i in range(3)]
        for i, p in enumerate(pics):
            r = s.upload_image('clippics', f'pic_{i}.png', p)
            assert r.status == 200, r
        assert s.wait_count('clippics', len(pics)) == len(pics)
        r = bp(s, 'POST', '/e2e-clip', job_body('clippics', 'clip'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-clip', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-clip'))
        assert len(rows) == len(pics)
        matched = 0
        embs = set()
        for row in rows:
            emb, temb = row['emb'], row['temb']
            assert isinstance(emb, list) and len(emb) == 32 and all(isinstance(v, float) for v in emb), row
            assert len(temb) == 32
            embs.add(tuple(round(v, 5) for v in emb))
            if max(abs(a - b) for a, b in zip(emb, ref['image_embedding'])) <= 1e-4:
                matched += 1
            # the same text embedding as PyTorch's ('a photo of a cat' is torch.json's first text)
            assert max(abs(a - b) for a, b in zip(temb, ref['text_embeddings'][0])) <= 1e-4
            assert abs(row['cos'] - cosine(emb, temb)) <= 1e-6, row
            assert len(row['sims']) == 3 and abs(row['sims'][0] - row['cos']) <= 1e-6, row
            best = max(range(3), key=lambda k: row['sims'][k])
            assert row['top'] == CLASSES[best]
            cls = row['cls']
            assert cls['top'] == CLASSES[best] and abs(cls['confidence'] - row['sims'][best]) <= 1e-9
            assert [p['class'] for p in cls['predictions']] == CLASSES
            assert [p['class_id'] for p in cls['predictions']] == [0, 1, 2]
        assert matched == 1, 'the replica picture row must carry PyTorch\'s embedding'
        assert len(embs) == len(pics), 'different pictures give different embeddings'
    finally:
        assert s.stop() == 0, s.tail_log()


def test_broken_clip_folder_skipped_and_job_fails_clearly(tmp_path):
    s = start(str(tmp_path), broken=True)
    try:
        log = s.tail_log()
        assert 'non-finite embedding' in log, log
        put_workflow(s, 'clip', WORKFLOW)
        r = s.upload_image('clippics', 'pic.png', picture(0))
        assert r.status == 200, r
        assert s.wait_count('clippics', 1) == 1
        r = bp(s, 'POST', '/e2e-clipbad', job_body('clippics', 'clip'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-clipbad', timeout=120)
        assert job['isTerminal'], job
        logs = bp(s, 'GET', '/e2e-clipbad/logs')
        text = logs.body.decode(errors='replace') if hasattr(logs, 'body') else str(logs)
        assert job['error'] is True, job
        assert "unknown model 'clip/ViT-B-32' (not registered)" in job['lastNotification']['message'], job
        assert "model 'clip/ViT-B-32': unknown model 'clip/ViT-B-32' (not registered)" in text, text[:2000]
    finally:
        assert s.stop() == 0, s.tail_log()


def test_clip_registered_over_http_runs_a_job(tmp_path):
    """The same replica registered through the API as a multipart form of its
    three files (issue 13 item 5), under the two versions the workflow names,
    and a job on it: the replica picture's row carries PyTorch's embedding."""
    os.makedirs(os.path.join(str(tmp_path), 'data'))
    s = Server(os.path.join(str(tmp_path), 'data'), args=['--allow-private-urls'],
               env=ort_env(str(tmp_path))).start()
    ref = json.load(open(os.path.join(TINY, 'test', 'torch.json')))
    try:
        files = [(f, None, open(os.path.join(TINY, f), 'rb').read())
                 for f in ('visual.onnx', 'textual.onnx', 'merges.txt')]
        for mid in ('clip/ViT-B-16', 'clip/ViT-B-32'):
            ctype, body = multipart(files)
            r = s.request('PUT', f'/models/v1/external/{s.workspace}/models/{mid}', body=body,
                          headers={'Content-Type': ctype})
            assert r.status == 200, r
            assert r.json()['task'] == 'embedding', r.json()
        # a form without the text encoder is not a CLIP model
        ctype, body = multipart(files[:1] + files[2:])
        r = s.request('PUT', f'/models/v1/external/{s.workspace}/models/clip/ViT-L-14', body=body,
                      headers={'Content-Type': ctype})
        assert r.status == 400, r
        put_workflow(s, 'clip', WORKFLOW)
        r = s.upload_image('httpclip', 'pic.png', open(os.path.join(TINY, 'test', 'picture.png'), 'rb').read())
        assert r.status == 200, r
        assert s.wait_count('httpclip', 1) == 1
        r = bp(s, 'POST', '/e2e-clip-http', job_body('httpclip', 'clip'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-clip-http', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-clip-http'))
        assert len(rows) == 1
        assert max(abs(a - b) for a, b in zip(rows[0]['emb'], ref['image_embedding'])) <= 1e-4, rows[0]
        assert max(abs(a - b) for a, b in zip(rows[0]['temb'], ref['text_embeddings'][0])) <= 1e-4, rows[0]
    finally:
        assert s.stop() == 0, s.tail_log()
