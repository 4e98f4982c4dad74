"""`minimax2 serve`: OpenAI- and Anthropic-compatible HTTP API over a local engine or a remote one.

    from minimax2.server.app import create_app
    app = create_app(backend, served_model_name="minimax-m2")
"""
