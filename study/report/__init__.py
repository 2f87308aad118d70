"""Reading a finished study: analysis, sections, the markdown report, comparisons, trial exports."""
