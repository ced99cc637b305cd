"""``ciaosr serve``: one web page that upscales an image on this machine.

The rooms: ``limits`` (what a shared machine caps, with the defaults), ``catalogue``
(the models a request may name: the shipped ones and the files of ``--models-dir``,
by id only), ``settings`` (a request's parameters, checked by the command line's own
code), ``jobs`` (the queue, its one worker thread and each job's temporary folder) and
``app`` (the HTTP routes, Starlette); ``static/`` holds the page. Only ``app`` imports
the web stack (the ``web`` extra), so the rest is importable and testable without it.
"""
