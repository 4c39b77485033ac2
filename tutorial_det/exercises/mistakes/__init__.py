"""The catalogue of realistic mistakes, one module per topic, one :class:`Catalogue` per check.

Every wrong function here is small and runs: the checks run them on their cases to recognise
the learner's mistake, and the lessons may show them. Each module's docstring names its lesson.
"""
