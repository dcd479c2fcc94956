"""The bottom layer every other package imports, and which imports none of them: the event contracts
(:mod:`core.contracts`), the prediction tasks and their labels (:mod:`core.tasks`) and event-time days
(:mod:`core.days`)."""
