"""Assessments (exams, course grades) of an offering: tasks, participations, schemes applied to them."""
