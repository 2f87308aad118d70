"""User-facing errors: bad input that the CLI reports as one line and a non-zero exit."""


class StudyError(Exception):
    """Bad input or an unavailable resource, explained in one line for the user."""


class SearchSpaceError(StudyError):
    """A search-space file is unreadable or does not follow the format."""


class DataError(StudyError):
    """The image folder cannot give train, validation and test sets."""


class WeightsError(StudyError):
    """The requested MobileNet weights cannot be had."""


class StorageError(StudyError):
    """The storage URL is malformed or the study in it does not fit the request."""
