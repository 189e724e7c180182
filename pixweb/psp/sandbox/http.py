"""What every sandbox route does with its request: the caller's token and scope, path
segments, the JSON body as a schema model, and spec-shaped answers."""

from __future__ import annotations

import re
from typing import TypeVar, cast

from pydantic import BaseModel, ValidationError
from quart import Response, current_app, request

from pixweb import validation
from pixweb.deps import get_config
from pixweb.models import Merchant
from pixweb.psp.sandbox import auth
from pixweb.psp.sandbox.problems import SandboxError, invalid, schema_problem
from pixweb.psp.sandbox.worker import SandboxWorker

M = TypeVar("M", bound=BaseModel)

TXID = re.compile(r"[a-zA-Z0-9]{26,35}")
E2EID = re.compile(r"[a-zA-Z0-9]{32,35}")
DEVOLUCAO_ID = re.compile(r"[a-zA-Z0-9]{1,35}")
KEY_MAX = 77
WORKER_KEY = "pixweb.sandbox_psp.worker"


def get_worker() -> SandboxWorker:
    """This app's sandbox worker: the app's simulate route pays through it."""
    return cast(SandboxWorker, current_app.extensions[WORKER_KEY])


def json_response(model: BaseModel, status: int = 200) -> Response:
    """`model` as the API Pix writes it: camelCase, absent fields left out."""
    body = model.model_dump_json(by_alias=True, exclude_none=True)
    return Response(body, status=status, content_type="application/json")


def problem_response(error: SandboxError) -> Response:
    response = Response(error.body(), status=error.status, content_type="application/problem+json")
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sandbox-psp"'
    return response


async def caller(scope: str | None) -> Merchant:
    """The merchant whose valid token, holding `scope` (None: any), the request carries."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    grant = auth.read_token(get_config().secret_key, token.strip())
    if scheme.lower() != "bearer" or grant is None:
        raise SandboxError(401, "NaoAutorizado", "Token ausente, inválido ou expirado.")
    if scope is not None and scope not in grant.scopes:
        raise SandboxError(403, "AcessoNegado", f"O token não tem o escopo {scope}.")
    merchant = await Merchant.get_or_none(id=grant.merchant_id)
    if merchant is None:
        raise SandboxError(401, "NaoAutorizado", "O cliente deste token não existe mais.")
    return merchant


def segment(value: str, pattern: re.Pattern[str], name: str, problem: str) -> str:
    """A path segment that must match `pattern`, else a 400 naming it."""
    if not pattern.fullmatch(value):
        raise invalid(
            problem,
            f"O parâmetro {name} não respeita o schema.",
            name,
            f"O parâmetro {name} deve casar com {pattern.pattern}.",
            value[:100],
        )
    return value


def key(chave: str, problem: str) -> str:
    """A Pix key from the path: 1 to 77 characters, none of them a control character."""
    if not 1 <= len(chave) <= KEY_MAX or validation.has_forbidden(chave):
        shown = validation.shown(chave[:KEY_MAX])
        raise invalid(problem, "A chave não respeita o schema.", "chave", "Chave inválida.", shown)
    return chave


async def body(model: type[M], problem: str, detail: str, prefix: str) -> M:
    """The request's JSON body as `model`; a problem naming each property at fault."""
    try:
        parsed = model.model_validate_json(await request.get_data())
    except ValidationError as exc:
        raise schema_problem(problem, detail, exc, prefix) from None
    for path, text in _texts(parsed.model_dump(by_alias=True), prefix):
        if validation.has_forbidden(text):
            raise invalid(problem, detail, path, "O texto contém um caractere de controle.")
    return parsed


def _texts(value: object, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, f"{path}.{i}")]
    return []
