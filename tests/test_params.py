"""helpers.params: the rules of notebook parameters, and the command-line options built on them."""

import pytest

from helpers.params import OPTIONS, ParameterError, build_parser, check_options, check_params, parse_value


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
        pytest.param("LEARNING_RATE", 10**400, "LEARNING_RATE = a whole number of about 400 digits is not allowed: "
                     "must be a number greater than 0", id="too-large-for-a-float"),
        pytest.param("NOISE", -10**400, "NOISE = a whole number of about 400 digits is not allowed: must be a "
                     "number of 0", id="too-negative-for-a-float"),
        pytest.param("TEST_FRACTION", 10**5000, "TEST_FRACTION = a whole number of about 5000 digits is not allowed",
                     id="more-digits-than-str-prints"),
    ],
)
def test_bad_values_name_parameter_value_and_rule(name, value, expected):
    with pytest.raises(ParameterError) as info:
        check_params({name: value})
    assert expected in str(info.value)
    assert str(info.value).startswith(f"{name} = ")


def test_a_huge_whole_number_in_a_choice_is_refused_by_its_size():
    with pytest.raises(ParameterError, match=r"^SEEDS = a whole number of about 400 digits is not allowed: choose"):
        check_params({"SEEDS": 10**400}, choices={"SEEDS": [1, 3]})


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


# parse_value, build_parser and check_options: the command-line options of the scripts of 10_going_further.

@pytest.mark.parametrize(("text", "value"), [
    ("5", 5), ("-8", -8), ("0.003", 0.003), ("1e-3", 0.001), ("2.5", 2.5), ("True", True), ("False", False),
    ("'mlp'", "mlp"), ("fast", "fast"), ("ten", "ten"), ("", ""), ("0.003.1", "0.003.1"),
])
def test_parse_value_reads_literals_as_papermill_does_and_keeps_the_rest_as_text(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_value_keeps_absurdly_nested_text_as_text():
    text = "[" * 100_000  # the parser gives up (MemoryError or RecursionError): still just text
    assert parse_value(text) == text


def test_build_parser_has_one_option_per_table_entry_with_its_default():
    args = build_parser("prog", "what it does").parse_args([])
    assert vars(args) == {name: entry[2] for name, entry in OPTIONS.items()}
    assert (args.dataset, args.model, args.epochs, args.lr, args.device, args.out) == (
        "digits", "tinyvgg", 5, 0.003, "auto", "")


def test_build_parser_parses_numbers_as_literals_and_names_as_text():
    args = build_parser("prog", "d").parse_args(
        ["--epochs", "3", "--lr", "1e-2", "--batch-size", "ten", "--seed", "True", "--model", "5",
         "--hidden-units", "2.5", "--out", "runs/x"])
    assert (args.epochs, args.lr, args.batch_size, args.seed) == (3, 0.01, "ten", True)
    assert type(args.seed) is bool and type(args.hidden_units) is float
    assert args.model == "5" and args.out == "runs/x"  # names and paths are never read as numbers


def test_build_parser_help_names_every_option_with_its_default(capsys):
    parser = build_parser("python -m my.script", "Trains things.")
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert text.startswith("usage: python -m my.script") and "Trains things." in text
    assert "only process 0 writes (default: )" in text and "(default: tinyvgg)" in text
    assert "--hidden-units N" in text and "--lr RATE" in text


CHOICES = {"DATASET": ["digits"], "MODEL": ["tinyvgg", "mlp"]}


def test_check_options_accepts_the_defaults_and_leaves_the_device_to_get_device():
    check_options(build_parser("p", "d").parse_args([]), CHOICES)
    check_options(build_parser("p", "d").parse_args(["--device", "tpu"]), CHOICES)  # get_device refuses it


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "0"], "--epochs: EPOCHS = 0 is not allowed: must be a whole number greater than 0, such as 10."),
    (["--epochs", "True"], "--epochs: EPOCHS = True is not allowed: must be a whole number greater than 0"),
    (["--batch-size", "2.5"], "--batch-size: BATCH_SIZE = 2.5 is not allowed"),
    (["--lr", "fast"], "--lr: LEARNING_RATE = 'fast' is not allowed: must be a number greater than 0"),
    (["--seed", "-1"], "--seed: SEED = -1 is not allowed: must be a whole number of 0 or more"),
    (["--hidden-units", "0"], "--hidden-units: HIDDEN_UNITS = 0 is not allowed"),
    (["--model", "resnet"], "--model: MODEL = 'resnet' is not allowed: choose one of 'tinyvgg', 'mlp'."),
    (["--dataset", "mnist"], "--dataset: DATASET = 'mnist' is not allowed: choose one of 'digits'."),
])
def test_check_options_names_the_option_and_the_rule(argv, message):
    with pytest.raises(ParameterError) as info:
        check_options(build_parser("p", "d").parse_args(argv), CHOICES)
    assert str(info.value).startswith(message)


def test_check_options_reports_the_first_bad_option_in_table_order():
    args = build_parser("p", "d").parse_args(["--seed", "-1", "--epochs", "0"])
    with pytest.raises(ParameterError, match="^--epochs: "):
        check_options(args, CHOICES)
