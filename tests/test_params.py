import pytest

from helpers.params import ParameterError, check_params


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EPOCHS", 0, "EPOCHS = 0 is not allowed: must be a whole number greater than 0"),
        ("EPOCHS", -3, "EPOCHS = -3 is not allowed"),
        ("EPOCHS", 2.5, "EPOCHS = 2.5 is not allowed"),
        ("EPOCHS", True, "EPOCHS = True is not allowed"),
        ("BATCH_SIZE", -1, "BATCH_SIZE = -1 is not allowed"),
        ("LEARNING_RATE", "fast", "LEARNING_RATE = 'fast' is not allowed: must be a number greater than 0"),
        ("LEARNING_RATE", 0, "LEARNING_RATE = 0 is not allowed"),
        ("LEARNING_RATE", float("nan"), "LEARNING_RATE = nan is not allowed"),
        ("LEARNING_RATE", "0.01", "(a number, not text)"),
        ("SEED", -1, "SEED = -1 is not allowed: must be a whole number of 0 or more"),
        ("SMOKE", "yes", "SMOKE = 'yes' is not allowed: must be True or False"),
        ("TEST_FRACTION", 1.0, "TEST_FRACTION = 1.0 is not allowed: must be a number strictly between 0 and 1"),
        ("RUNS_DIR", 3, "RUNS_DIR = 3 is not allowed: must be text"),
    ],
)
def test_bad_values_name_parameter_value_and_rule(name, value, expected):
    with pytest.raises(ParameterError) as info:
        check_params({name: value})
    assert expected in str(info.value)
    assert str(info.value).startswith(f"{name} = ")


def test_good_values_pass():
    for learning_rate in (1e-3, 1):  # an int is a number too
        check_params({"EPOCHS": 3, "BATCH_SIZE": 1, "LEARNING_RATE": learning_rate, "SEED": 0,
                      "SMOKE": False, "TEST_FRACTION": 0.2, "RUNS_DIR": ""})


def test_choices_list_allowed_values():
    check_params({"DATASET": "digits"}, choices={"DATASET": ["digits", "shapes"]})
    with pytest.raises(ParameterError) as info:
        check_params({"DATASET": "cifar100"}, choices={"DATASET": ["digits", "shapes"]})
    assert str(info.value) == "DATASET = 'cifar100' is not allowed: choose one of 'digits', 'shapes'."


def test_choice_of_numbers_does_not_accept_bool():
    with pytest.raises(ParameterError):
        check_params({"LAYERS": True}, choices={"LAYERS": [1, 2]})


def test_first_bad_parameter_is_reported():
    with pytest.raises(ParameterError, match="^EPOCHS"):
        check_params({"SEED": 1, "EPOCHS": 0, "BATCH_SIZE": 0})


def test_unknown_name_is_a_programming_error():
    with pytest.raises(KeyError, match="no rule for parameter 'COLOUR'"):
        check_params({"COLOUR": "red"})
