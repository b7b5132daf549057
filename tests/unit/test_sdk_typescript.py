"""`service/static/sdk/tryon.d.ts` describes `tryon.js` to a TypeScript project.

A small program using the client type-checks with `tsc --noEmit --strict` against the
declarations; programs that misuse it fail to; and every class and method the module exports at
runtime (read by node) is declared. TypeScript 5 comes from the npm registry into `.cache/ts`
on first use (`make test` installs node and npm when the machine has none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "service" / "static" / "sdk"
TS_DIR = ROOT / ".cache" / "ts"
TYPESCRIPT = "typescript@5"

GOOD = """
import { TryOnClient, TryOnError, type TryOn, type Progress } from "SDK/tryon.js";

const client = new TryOnClient({
  publishableKey: "pk_test",
  getToken: async ({ reason }) => ({ token: `t-${reason}`, expiresAt: Date.now() + 60_000 }),
  transport: "auto",
});
client.setToken("tok");

async function run(file: File): Promise<string> {
  const photo = await client.uploadPhoto(file, { crop: false });
  const created: TryOn = await client.createTryOn({ productId: "tee", imageId: photo.id,
                                                    metadata: { order: 7 } });
  for await (const state of client.watchTryOn(created.id, { transport: "poll" })) {
    const status: "queued" | "submitting" | "running" | "completed" | "failed" | "canceled" =
      state.status;
    console.log(status);
  }
  const read = await client.getTryOn(created.id, { wait: 10 });
  const done = await client.tryOn({
    productId: "tee",
    photo: file,
    crop: true,
    onProgress: (p: Progress) => console.log(p.status, p.tryOn?.id),
    signal: AbortSignal.timeout(120_000),
  });
  await client.waitForTryOn(read.id, { onProgress: (p) => console.log(p.status) });
  await client.tryOn({ productId: "tee", imageId: photo.id, idempotencyKey: "k" });
  return done.result?.imageUrl ?? "";
}

try {
  await run(new File([], "p.jpg"));
} catch (err) {
  if (err instanceof TryOnError && err.retryable) {
    const wait: number | null = err.retryAfter;
    console.log(err.code, err.status, wait, err.details?.[0]?.path, err.tryOn?.status);
  }
}
"""

# Each must fail to type-check: the declarations are what tsc checks against.
BAD = {
    "neither photo nor imageId": 'await client.tryOn({ productId: "tee" });',
    "both photo and imageId": (
        'await client.tryOn({ productId: "tee", imageId: "i", photo: new Blob([]) });'
    ),
    "an unknown status": (
        'const t = await client.getTryOn("x"); if (t.status === "done") { console.log(t); }'
    ),
    "an unknown transport": 'new TryOnClient({ publishableKey: "pk", transport: "ws" });',
    "no publishable key": "new TryOnClient({});",
}
BAD_PRELUDE = 'import { TryOnClient } from "SDK/tryon.js";\nconst client = new TryOnClient({ publishableKey: "pk" });\n'  # noqa: E501


def tsc() -> Path:
    binary = TS_DIR / "node_modules" / ".bin" / "tsc"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (make test installs node and npm)")
    TS_DIR.mkdir(parents=True, exist_ok=True)
    # The cache is not part of the repository.
    (TS_DIR.parent / ".gitignore").write_text("*\n")
    subprocess.run(
        [npm, "install", "--prefix", str(TS_DIR), "--no-audit", "--no-fund", TYPESCRIPT],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return binary


# A browser project's settings: strict, ES modules, the DOM's types.
TSC_OPTIONS = [
    "--noEmit",
    "--strict",
    "--target",
    "es2022",
    "--module",
    "es2022",
    "--moduleResolution",
    "bundler",
    "--lib",
    "es2022,dom,dom.iterable,dom.asynciterable",
]


def typecheck(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "app.ts"
    program.write_text(source.replace("SDK/", f"{SDK.as_posix()}/"))
    return subprocess.run(
        [str(tsc()), *TSC_OPTIONS, str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_typescript_program_using_the_client_type_checks(tmp_path: Path) -> None:
    result = typecheck(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mistake", list(BAD))
def test_misuse_does_not_type_check(tmp_path: Path, mistake: str) -> None:
    result = typecheck(tmp_path, BAD_PRELUDE + BAD[mistake])
    assert result.returncode != 0, mistake
    assert "error TS" in result.stdout


def test_every_runtime_export_and_method_is_declared() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make test installs it)")
    script = (
        f"const m = await import({json.dumps((SDK / 'tryon.js').as_uri())});"
        "const out = {};"
        "for (const [name, value] of Object.entries(m)) {"
        "  out[name] = Object.getOwnPropertyNames(value.prototype ?? {})"
        "    .filter((k) => k !== 'constructor');"
        "}"
        "console.log(JSON.stringify(out));"
    )
    runtime = json.loads(
        subprocess.run(
            [node, "--input-type=module", "-e", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    declared = (SDK / "tryon.d.ts").read_text()
    assert set(runtime) == {"TryOnClient", "TryOnError"}
    for name, members in runtime.items():
        body = declared.split(f"export declare class {name} ", 1)[1].split("\n}\n", 1)[0]
        for member in members:
            assert f" {member}(" in body, f"{name}.{member} is not declared"
