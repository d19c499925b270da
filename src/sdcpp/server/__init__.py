"""``sdcpp serve``: an HTTP server for one model, speaking the A1111 and OpenAI images APIs.

Install it with sdcpp's extra ``server`` (``pip install '.[server]'`` in sdcpp's checkout) and
start it with ``sdcpp serve MODEL`` (docs/server.md). From Python::

    import uvicorn
    from sdcpp import Generator
    from sdcpp.server.app import create_app

    with Generator("model.safetensors") as gen:
        uvicorn.run(create_app(gen), host="127.0.0.1", port=7860)

This package imports nothing of the server's stack itself, so that ``sdcpp`` works without it.
"""
