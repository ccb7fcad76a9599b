"""The autograder: exercise notebooks from one source, and grading of student submissions.

- `exercises`: writes `exercises/NN_slug.ipynb` from `solutions/NN_slug.ipynb`.
- `visible`: the small check helpers that the exercise notebooks use for immediate feedback.
- `spec`, `checks/`: what an exercise set grades (functions, grader-chosen calls, checks).
- `static`, `harness`, `grader`, `report`: screening, the code run in the student's kernel,
  the grading run, and the files it writes.
- `cli`: the `exercises` and `grade` commands of `python -m mlcourse`.
"""
