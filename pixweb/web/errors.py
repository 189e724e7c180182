"""HTML error pages in Portuguese for people using a browser."""

from __future__ import annotations

from quart import Response, redirect, render_template, request, url_for

MESSAGES = {
    403: ("Sessão expirada", "Recarregue a página e tente de novo."),
    404: ("Página não encontrada", "O endereço não existe ou a cobrança não foi encontrada."),
    405: ("Método não permitido", "Esta página não aceita esta operação."),
    429: ("Muitas tentativas", "Aguarde um minuto antes de tentar de novo."),
    500: ("Erro inesperado", "Algo deu errado do nosso lado. Tente novamente em instantes."),
}


async def error_page(status: int, *, request_id: str | None = None) -> tuple[str, int]:
    """Render the pt-BR page for an HTTP error status; a 500 shows the id its log line has."""
    title, message = MESSAGES.get(status, ("Erro", "Não foi possível atender ao pedido."))
    page = await render_template(
        "pages/error.html", status=status, title=title, message=message, request_id=request_id
    )
    return page, status


def to_login() -> Response:
    """Send a logged-out browser to the login page (HTMX follows HX-Redirect instead)."""
    target = url_for("web_auth.login_page")
    if request.headers.get("HX-Request") == "true":
        return Response("", status=401, headers={"HX-Redirect": target})
    return redirect(target)  # type: ignore[return-value]
