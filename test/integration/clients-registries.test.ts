/**
 * Package managers and an AWS SDK through `turret run`, against local servers that refuse
 * anything but the REAL credential (helpers/registries.ts): npm publishes and installs with a
 * token handle in ~/.npmrc, pip installs from a PEP 503 index with a handle in the index URL,
 * boto3 writes and reads S3 and writes DynamoDB with handles as its keys (the server verifies
 * SigV4 with the real key). No client is told about Turret beyond what `turret run` sets.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAwsServer, startNpmRegistry, startPypiIndex, type AwsServer, type Registry } from '../helpers/registries.js';
import { assertNoSecrets, startTurret, turretOutputs, type TurretProc } from '../helpers/turret.js';
import { turretRunner } from '../helpers/turret-run.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const NPM = `fake_npm_${randomBytes(18).toString('hex')}`;
const PYPI = `fake_pypi_${randomBytes(18).toString('hex')}`;
const AWS_ID = `AKIAFAKE${randomBytes(6).toString('hex').toUpperCase()}`;
const AWS_KEY = `fake/aws+${randomBytes(18).toString('base64')}`;
const ENV = { T_NPM: NPM, T_PYPI: PYPI, T_AWS_ID: AWS_ID, T_AWS_KEY: AWS_KEY, TURRET_ADMIN: 'off' };

const rules = (): RuleFile => ({
  agents: ['builder'],
  secrets: [
    { name: 'npm', from: { env: 'T_NPM' }, hosts: ['registry.turret.test:*'], env: 'NPM_TOKEN' },
    { name: 'pypi', from: { env: 'T_PYPI' }, hosts: ['pypi.turret.test:*'], env: 'PIP_INDEX_TOKEN' },
    {
      name: 'aws',
      from: { env: 'T_AWS_KEY' },
      hosts: ['s3.turret.test:*', 'dynamodb.turret.test:*'],
      env: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
      aws: { access_key_id: { env: 'T_AWS_ID' } },
    },
  ],
  rules: [
    {
      name: 'registries',
      methods: ['read', 'write'],
      hosts: ['registry.turret.test:*', 'pypi.turret.test:*', 's3.turret.test:*', 'dynamodb.turret.test:*'],
      unsafe_addresses: LOOPBACK,
    },
  ],
  local: ['registry.turret.test', 'pypi.turret.test', 's3.turret.test', 'dynamodb.turret.test'],
});

const BOTO = (port: number): string => `
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="https://s3.turret.test:${port}", region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
s3.put_object(Bucket="bucket", Key="report.txt", Body=b"written through turret")
print(s3.get_object(Bucket="bucket", Key="report.txt")["Body"].read().decode())
ddb = boto3.client("dynamodb", endpoint_url="https://dynamodb.turret.test:${port}", region_name="us-east-1")
ddb.put_item(TableName="runs", Item={"id": {"S": "run-1"}})
print("dynamodb ok")
`;

describe('package managers and an AWS SDK through turret run', () => {
  let t: TurretProc;
  let npm: Registry;
  let pypi: Registry;
  let aws: AwsServer;
  const work = mkdtempSync(path.join(tmpdir(), 'turret-registries-'));
  const runner = turretRunner(() => t, 'builder', work, ENV);

  before(async () => {
    npm = await startNpmRegistry(NPM);
    pypi = await startPypiIndex(PYPI);
    aws = await startAwsServer(AWS_ID, AWS_KEY);
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: ENV, startTimeoutMs: 60_000 });
  });

  after(async () => {
    await t?.stop();
    await Promise.all([npm?.up.close(), pypi?.up.close(), aws?.up.close()]);
    assertNoSecrets([['client outputs', runner.outputs.join('\n')], ...turretOutputs(t)], { 'the npm token': NPM, 'the PyPI token': PYPI, 'the AWS key': AWS_KEY });
  });

  it('npm publish and install with a token handle in ~/.npmrc', async () => {
    const registry = `https://registry.turret.test:${npm.up.port}/`;
    writeFileSync(
      path.join(work, '.npmrc'),
      `registry=${registry}\n//registry.turret.test:${npm.up.port}/:_authToken=\${NPM_TOKEN}\ncache=${path.join(work, 'npm-cache')}\nupdate-notifier=false\naudit=false\nfund=false\n`,
    );
    mkdirSync(path.join(work, 'pkg'));
    writeFileSync(path.join(work, 'pkg', 'package.json'), JSON.stringify({ name: 'turret-demo-pkg', version: '1.0.0', main: 'index.js' }));
    writeFileSync(path.join(work, 'pkg', 'index.js'), "module.exports = 'published through turret';\n");
    chmodSync(path.join(work, 'pkg'), 0o777); // the command runs as nobody
    const r = await runner.run([
      'sh',
      '-c',
      'cd pkg && npm publish --ignore-scripts && mkdir ../app && cd ../app && npm init -y >/dev/null && npm install --ignore-scripts turret-demo-pkg && node -p "require(\'turret-demo-pkg\')"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /published through turret/);
    assert.deepEqual(npm.refused, [], 'every request carried the real token');
    assert.ok(npm.auths.length >= 3 && npm.auths.every((a) => a === `Bearer ${NPM}`), 'publish, packument and tarball all carried the real token');
    assert.ok(existsSync(path.join(work, 'app', 'node_modules', 'turret-demo-pkg', 'index.js')));
  });

  it('pip install from a private PEP 503 index with a handle in the index URL', async () => {
    const index = `https://__token__:$PIP_INDEX_TOKEN@pypi.turret.test:${pypi.up.port}/simple/`;
    const r = await runner.run([
      'sh',
      '-c',
      `/usr/bin/python3 -m pip install --no-deps --no-cache-dir --disable-pip-version-check --no-input --target pip-target --index-url "${index}" turretdemo && PYTHONPATH=pip-target /usr/bin/python3 -c "import turretdemo; print(turretdemo.VALUE)"`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /from-the-private-index/);
    assert.deepEqual(pypi.refused, [], 'every request carried the real credential');
    assert.ok(pypi.auths.length >= 2);
  });

  it('boto3: S3 put/get and DynamoDB put_item, signed with handles, verified with the real key', async () => {
    writeFileSync(path.join(work, 'aws.py'), BOTO(aws.up.port));
    const r = await runner.run(['/usr/bin/python3', 'aws.py']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /written through turret\ndynamodb ok/);
    assert.ok(aws.verdicts.length >= 3);
    assert.deepEqual(
      aws.verdicts.filter((v) => !v.ok),
      [],
      'every request was signed with the real key',
    );
    assert.equal(aws.objects.get('/bucket/report.txt')?.toString(), 'written through turret');
    assert.deepEqual(
      aws.dynamo.map((d) => d.target),
      ['DynamoDB_20120810.PutItem'],
    );
  });
});
