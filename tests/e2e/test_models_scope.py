"""Models belong to a workspace (issue 9 item 4).

Before, one registry served every workspace: workspace B, with its own key
and path, could replace or delete a model that workspace A's workflows use.
Now a model registered over HTTP belongs to the workspace of the path; the
operator's models (--models-dir, `vbatch model register` without
--workspace, rows stored before this change) are seen and used by every
workspace and written by none over HTTP (409).  A workspace sees its own
model of an id before the operator's.

The matrix over two workspaces A and B: read (GET, list), use in a job,
replace, delete — A's own model, B's own model of the same id, an operator
model stored with the CLI, an operator model of a --models-dir folder, and
an id A shadows with its own model.  Plus: a data folder from before the
change (models table without workspaces) keeps working.
"""
import json
import os
import shutil
import sqlite3

import pytest

from conftest import Server, db_rows, sqlite_only
from jobs_helpers import MODELS, bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job
from test_models_api import det_metadata, register_multipart

MR = '/models/v1/external'
DET = os.path.join(MODELS, 'synth-det')
WEIGHTS = open(os.path.join(DET, 'weights.onnx'), 'rb').read()


def det_wf(model_id):
    return {
        'version': '1.0',
        'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
        'steps': [{'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                   'images': '$inputs.image', 'model_id': model_id, 'confidence': 0.3}],
        'outputs': [{'type': 'JsonField', 'name': 'predictions', 'selector': '$steps.det.predictions'}],
    }


def det_folder(path, classes):
    shutil.copytree(DET, path, ignore=shutil.ignore_patterns('test'))
    with open(os.path.join(path, 'class_names.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    return path


class As:
    """Calls as one workspace (its key, its path)."""

    def __init__(self, s, ws, key):
        self.s, self.ws, self.key = s, ws, key

    def get(self, model_id):
        return self.s.request('GET', f'{MR}/{self.ws}/models/{model_id}', key=self.key)

    def classes(self, model_id):
        r = self.get(model_id)
        return r.json()['classNames'] if r.status == 200 else r.status

    def listed(self):
        r = self.s.request('GET', f'{MR}/{self.ws}/models', key=self.key)
        assert r.status == 200, r
        return {m['modelId']: m['scope'] for m in r.json()['models']}

    def put(self, model_id, classes):
        return register_multipart(self.s, model_id, WEIGHTS, det_metadata(class_names=classes),
                                  key=self.key, path_ws=self.ws)

    def delete(self, model_id):
        return self.s.request('DELETE', f'{MR}/{self.ws}/models/{model_id}', key=self.key)

    def job(self, job_id, model_id):
        """Run a one-image job whose workflow uses model_id; the class names
        it predicted, or the job's error text."""
        s = self.s
        saved = s.workspace, s.key
        s.workspace, s.key = self.ws, self.key
        try:
            wf_id = 'wf-' + job_id
            put_workflow(s, wf_id, det_wf(model_id))
            r = bp(s, 'POST', f'/{job_id}', job_body('pics', wf_id, ws=self.ws))
            assert r.status == 200, r
            job = wait_job(s, job_id)
            rows = [] if job['error'] else results_rows(download_export(s, job_id))
            if not rows:  # the image failed (or the job did): say why
                logs = bp(s, 'GET', f'/{job_id}/logs').json()['logs']
                return 'error: ' + json.dumps([job, logs])
            assert len(rows) == 1
            return sorted({p['class'] for p in rows[0]['predictions']['predictions']})
        finally:
            s.workspace, s.key = saved


@pytest.fixture(scope='module')
def two(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('mscope'))
    folder = os.path.join(d, 'opmodels')
    det_folder(os.path.join(folder, 'opdir--1'), ['d1', 'd2', 'd3'])
    s = Server(d, args=['--allow-private-urls', '--models-dir', folder], env=ort_env(d)).start()
    out = s.cli('workspace', 'create', 'wsb')
    assert out.returncode == 0, out.stderr
    key_b = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key: ')][0]
    a, b = As(s, s.workspace, s.key), As(s, 'wsb', key_b)
    # the operator's stored model, with the CLI while the server runs
    p = s.cli('model', 'register', 'op/1', det_folder(os.path.join(d, 'op1'), ['o1', 'o2', 'o3']))
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().endswith('operator'), p.stdout
    img = open(os.path.join(DET, 'test', 'img_00.png'), 'rb').read()  # shapes the detector finds
    for w in (a, b):
        saved = s.workspace, s.key
        s.workspace, s.key = w.ws, w.key
        r = s.upload_image('pics', 'img.png', img)
        assert r.status == 200, r
        assert s.wait_count('pics', 1) == 1
        s.workspace, s.key = saved
    yield s, a, b
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_own_model_is_invisible_to_the_other_workspace(two):
    s, a, b = two
    r = a.put('mine/1', ['a1', 'a2', 'a3'])
    assert r.status == 200 and r.json()['scope'] == 'workspace', r
    # read
    assert a.classes('mine/1') == ['a1', 'a2', 'a3']
    assert a.get('mine/1').json()['scope'] == 'workspace'
    r = b.get('mine/1')
    assert r.status == 404 and 'mine/1' in r.json()['error'], r
    assert a.listed().get('mine/1') == 'workspace'
    assert 'mine/1' not in b.listed()
    # use in a job
    got = a.job('a-mine', 'mine/1')
    assert got and set(got) <= {'a1', 'a2', 'a3'}, got
    got = b.job('b-mine', 'mine/1')
    assert str(got).startswith('error') and 'unknown model' in got, got
    # delete by the other workspace: 404, nothing happens
    r = b.delete('mine/1')
    assert r.status == 404, r
    assert a.classes('mine/1') == ['a1', 'a2', 'a3']
    # "replace" by the other workspace: B gets its own model of that id; A's is untouched
    r = b.put('mine/1', ['b1', 'b2', 'b3'])
    assert r.status == 200 and r.json()['scope'] == 'workspace', r
    assert a.classes('mine/1') == ['a1', 'a2', 'a3']
    assert b.classes('mine/1') == ['b1', 'b2', 'b3']
    got_a, got_b = a.job('a-mine3', 'mine/1'), b.job('b-mine2', 'mine/1')
    assert got_a and set(got_a) <= {'a1', 'a2', 'a3'}, got_a
    assert got_b and set(got_b) <= {'b1', 'b2', 'b3'}, got_b
    # replace by the owner
    r = a.put('mine/1', ['a4', 'a5', 'a6'])
    assert r.status == 200, r
    assert a.classes('mine/1') == ['a4', 'a5', 'a6'] and b.classes('mine/1') == ['b1', 'b2', 'b3']
    # delete by the owner leaves the other workspace's model
    r = a.delete('mine/1')
    assert r.status == 200, r
    assert a.get('mine/1').status == 404
    assert b.classes('mine/1') == ['b1', 'b2', 'b3']
    assert b.delete('mine/1').status == 200
    assert b.get('mine/1').status == 404
    # the rows and the blobs: one scope each
    assert db_rows(s.data, "SELECT count(*) FROM models WHERE model_id='mine/1'") == [(0,)]


@pytest.mark.parametrize('op_id,classes', [('op/1', ['o1', 'o2', 'o3']), ('opdir/1', ['d1', 'd2', 'd3'])])
def test_operator_models_are_read_only_for_everyone(two, op_id, classes):
    s, a, b = two
    for w in (a, b):
        assert w.classes(op_id) == classes
        assert w.get(op_id).json()['scope'] == 'operator'
        assert w.listed().get(op_id) == 'operator'
        got = w.job(f'{w.ws}-{op_id.replace("/", "-")}', op_id)
        assert got and set(got) <= set(classes), got
        r = w.put(op_id, ['x', 'y', 'z'])
        assert r.status == 409 and 'operator' in r.json()['error'], r
        r = w.delete(op_id)
        assert r.status == 409 and 'operator' in r.json()['error'], r
        assert w.classes(op_id) == classes


def test_own_model_shadows_the_operators_for_its_workspace_only(two, tmp_path):
    s, a, b = two
    # the operator puts a model into A's scope (the CLI with --workspace)
    p = s.cli('model', 'register', 'op/1', det_folder(str(tmp_path / 'shadow'), ['s1', 's2', 's3']),
              '--workspace', a.ws)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().endswith(f'workspace {a.ws}'), p.stdout
    assert a.classes('op/1') == ['s1', 's2', 's3'] and a.get('op/1').json()['scope'] == 'workspace'
    assert b.classes('op/1') == ['o1', 'o2', 'o3']
    assert a.listed().get('op/1') == 'workspace' and b.listed().get('op/1') == 'operator'
    got_a, got_b = a.job('a-shadow', 'op/1'), b.job('b-shadow', 'op/1')
    assert got_a and set(got_a) <= {'s1', 's2', 's3'}, got_a
    assert got_b and set(got_b) <= {'o1', 'o2', 'o3'}, got_b
    # A may replace and delete its own; then it sees the operator's again
    assert a.put('op/1', ['t1', 't2', 't3']).status == 200
    assert a.classes('op/1') == ['t1', 't2', 't3'] and b.classes('op/1') == ['o1', 'o2', 'o3']
    assert a.delete('op/1').status == 200
    assert a.classes('op/1') == ['o1', 'o2', 'o3']
    r = a.delete('op/1')
    assert r.status == 409, r
    # the CLI lists scopes
    p = s.cli('model', 'list')
    assert p.returncode == 0, p.stderr
    lines = {tuple(ln.split('\t')[i] for i in (0, 4)) for ln in p.stdout.splitlines()}
    assert ('op/1', 'operator') in lines and ('opdir/1', 'operator') not in lines  # not in DATA/models


def test_aliases_stay_in_their_workspace(two):
    s, a, b = two
    r = register_multipart(s, 'al/1', WEIGHTS, det_metadata(class_names=['q1', 'q2', 'q3'], aliases=['al-x']),
                           key=a.key, path_ws=a.ws)
    assert r.status == 200, r
    assert a.classes('al-x') == ['q1', 'q2', 'q3']
    assert b.get('al-x').status == 404
    assert a.delete('al/1').status == 200


@sqlite_only
def test_data_folder_from_before_keeps_working(server_factory, tmpdir_path):
    """A models table without workspaces (core schema 2): its rows become
    the operator's."""
    s = server_factory(env=ort_env(tmpdir_path))
    s.start()
    s.stop()
    p = s.cli('model', 'register', 'legacy/1', det_folder(os.path.join(tmpdir_path, 'lg'), ['l1', 'l2', 'l3']))
    assert p.returncode == 0, p.stderr
    db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'))
    try:
        # back to the table of core migration 2, as an older vbatch left it
        db.executescript(
            "CREATE TABLE models_old (model_id TEXT PRIMARY KEY, weights_key TEXT NOT NULL,"
            " meta_key TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL,"
            " updated_ms INTEGER NOT NULL);"
            "INSERT INTO models_old SELECT model_id, weights_key, meta_key, size, sha256, created_ms, updated_ms"
            " FROM models;"
            "DROP TABLE models; ALTER TABLE models_old RENAME TO models;"
            # and the outbox of core schema 2 (undo migration 4)
            "DROP INDEX outbox_order; ALTER TABLE outbox DROP COLUMN dest;"
            " ALTER TABLE outbox DROP COLUMN order_key;"
            # and no leases table (undo migration 5)
            "DROP TABLE leases;"
            # and no secrets table (undo migration 6: the secret was DATA/secret's)
            "DROP TABLE secrets;"
            "UPDATE schema_versions SET version=2 WHERE component='core';")
        db.commit()
    finally:
        db.close()
    s.start()
    out = s.cli('workspace', 'create', 'other')
    key_b = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith('api_key: ')][0]
    for w in (As(s, s.workspace, s.key), As(s, 'other', key_b)):
        assert w.classes('legacy/1') == ['l1', 'l2', 'l3']
        assert w.get('legacy/1').json()['scope'] == 'operator'
        assert w.put('legacy/1', ['x', 'y', 'z']).status == 409
    db = sqlite3.connect(os.path.join(s.data, 'vbatch.db'))
    try:
        assert db.execute("SELECT workspace, model_id FROM models").fetchall() == [('', 'legacy/1')]
        assert db.execute("SELECT version FROM schema_versions WHERE component='core'").fetchone()[0] >= 3
    finally:
        db.close()
    # the operator can still remove it
    p = s.cli('model', 'delete', 'legacy/1')
    assert p.returncode == 0, p.stderr
    assert s.request('GET', f'{MR}/{s.workspace}/models/legacy/1').status == 404
