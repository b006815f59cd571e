"""Running the system: ``computeinfra up`` (``up``), ``up --join`` (``node``) and the web
app's process (``web``). The only package that imports both the Ray side
(``computeinfra.cluster``) and the web app (``computeinfra.web``)."""
