"""The studio (``brushwork serve``): a Gradio page over the library.

``studio`` holds what each control does (plain functions, no Gradio), ``app`` the page, ``serve``
who may reach it and how it is launched.
"""
