"""The contracts operators rely on, read from template.yaml itself.

IAM assertions run on the template as the SAM transform expands it (policy templates become real
statements), so they check what CloudFormation would deploy, not what the SAM shorthand suggests.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local_stack.template import load_template

FUNCTIONS = tuple(
    name for name, item in load_template()["Resources"].items() if item["Type"] == "AWS::Serverless::Function"
)

# SPEC §7: every parameter with a working default.
SPEC_DEFAULTS = {
    "NylasApiUri": "https://api.us.nylas.com",
    "NylasV2ApiUri": "https://api.nylas.com",
    "GraceSeconds": 120,
    "DomainClusterThreshold": 3,
    "DomainBurstMinutes": 15,
    "DomainWindowDays": 7,
    "NotifyCooldownHours": 24,
    "NotificationMode": "send",
    "ConnectorOutageThreshold": 10,
    "SweepIntervalMinutes": 60,
    "SweepNotifyDays": 7,
    "WebhookMaxAgeHours": 72,
    "ReplyToEmail": "",
    "SlackWebhookUrl": "",
}
SPEC_FREE_FORM = ("AppName", "SenderEmail", "OperatorEmail", "ReauthUrlTemplate")
# Parameters the stack's resources use rather than a function (the sweep's schedule, the Slack destination).
USED_BY_RESOURCES = ("SweepIntervalMinutes", "SlackWebhookUrl")

# The only AWS managed policies a function role may carry (logging, tracing). Not
# AWSLambdaSQSQueueExecutionRole, which SAM attaches for an `Events: SQS`: it receives and deletes on every
# queue of the account, DLQs included; the diagnosis function's mappings have statements on its two queues.
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# What Lambda's SQS poller calls with the function's role.
SQS_CONSUMING = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
SENDER_IDENTITY_ARN = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SenderEmail}"
CONFIGURATION_SET_ARN = (
    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${EmailConfigurationSet}"
)

# SPEC §7 / issue 14: each function's DynamoDB actions are exactly the calls its code makes, per table and
# index (a TransactWriteItems is authorised as the PutItem/UpdateItem of each of its items). Change this list
# and the template's statements together when a store starts or stops making a call.
DYNAMODB_GRANTS: dict[str, dict[str, set[str]]] = {
    "WebhookFunction": {},
    "DiagnosisFunction": {
        # put_event: a transaction of the event (Put) and its account state (Update); count_failure: the event's
        # index keys and its connector counters (Update);
        # state(): the account's current state item (Get); a burst window's connector counters (BatchGet).
        "EventsTable": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "Query"},
        "EventsTable/index/DomainFailures": {"Query"},
        "EventsTable/index/ConnectorFailures": {"Query"},
        # A new grant finds the broken account it replaces (SPEC §4c).
        "EventsTable/index/BrokenByAddress": {"Query"},
        "VerdictsTable": {"PutItem", "UpdateItem", "Query"},
        # An email SES rejected frees the customer's cooldown claim (a conditional DeleteItem); a customer email
        # checks its address was never hard-bounced (ConditionCheck in the intent's transaction).
        "NotificationsTable": {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
        # Powertools' DynamoDBPersistenceLayer: get, put (conditional), update, delete on failure.
        "IdempotencyTable": {"GetItem", "PutItem", "UpdateItem", "DeleteItem"},
        # open (conditional puts), join (a transaction: member put + shard update), live pointers (BatchGet);
        # the last member recovering resolves the incident and deletes its open-incident pointer; a verdict
        # outside any incident is stored on the condition that no pointer appeared (ConditionCheck).
        "IncidentsTable": {"GetItem", "BatchGetItem", "ConditionCheckItem", "PutItem", "UpdateItem", "DeleteItem"},
        "IncidentsTable/index/ByIncident": {"Query"},
    },
    "AccountsApiFunction": {
        # The account's state item; its status needs no event query. The recovery report: a query of each
        # aggregate shard and one BatchGetItem of the open-episode counts.
        "EventsTable": {"GetItem", "BatchGetItem", "Query"},
        "EventsTable/index/DomainFailures": {"Query"},
        "EventsTable/index/BrokenAccounts": {"Query"},
        "VerdictsTable": {"Query"},
        "VerdictsTable/index/ByDomain": {"Query"},
        # release and resolve mark the incident (Update); resolve deletes its open-incident pointer (Delete).
        "IncidentsTable": {"GetItem", "BatchGetItem", "UpdateItem", "DeleteItem"},
        "IncidentsTable/index/ByIncident": {"Query"},
        "IncidentsTable/index/ByStatus": {"Query"},
    },
    # Whether an account's history already holds the failure the sweep found: its state item (BatchGet), or
    # its latest events when it has none.
    # An account found recovered or gone ends its episode (a transaction: Update, Put) and leaves the broken list.
    # The census publishes one aggregate per domain and connector (BatchWriteItem) and its pointer (PutItem); its
    # lease and the feed's and the clock's state are claimed with conditional updates.
    "SweepFunction": {
        "EventsTable": {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "BatchWriteItem"},
        "EventsTable/index/BrokenAccounts": {"Query"},
        # An account found recovered is marked on its open incidents; the last member resolves the incident and
        # deletes its open-incident pointer (SPEC §4c). A removed account is not marked.
        "IncidentsTable": {"GetItem", "BatchGetItem", "UpdateItem", "DeleteItem"},
    },
    # SES feedback: the message's pointer and its alert claim, and the status on the verdict's notifications.
    # A customer's first click (EmailTracking) counts the account's episode clicked: its state item and aggregate.
    "SesEventsFunction": {
        "NotificationsTable": {"GetItem", "UpdateItem"},
        "VerdictsTable": {"UpdateItem"},
        "EventsTable": {"GetItem", "UpdateItem"},
    },
}
# Never needed by this code: a Scan reads a whole table, a BatchWriteItem writes without conditions.
NEVER_GRANTED = {"Scan", "BatchWriteItem", "PartiQLSelect", "PartiQLInsert", "PartiQLUpdate", "PartiQLDelete"}
# Except for aggregates nothing else writes, rewritten whole: the census's per-domain counts (SPEC §3c), one item
# per domain, where a conditional write per item would cost O(domains) calls instead of O(domains / 25).
BATCH_WRITTEN = {("SweepFunction", "EventsTable")}
# Deleting is how Powertools releases an idempotency record, how an incident frees its key and how a rejected
# email frees the customer's cooldown claim, each a conditional delete of one bookkeeping item; no data is deleted.
DELETABLE = {"IdempotencyTable", "IncidentsTable", "NotificationsTable"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def deployed(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template the SAM transform produces (what `sam deploy` would create)."""
    sam = copy.deepcopy(template)
    for resource in sam["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):  # the transform wants packaged code; `sam build` does this
            if key in properties:
                properties[key] = "s3://bucket/key"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    deployed: dict[str, Any] = translator.translate(sam, parameter_values={}, get_managed_policy_map=dict)
    return deployed


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]
    return found


def function_setting(template: dict[str, Any], function: str, name: str) -> Any:
    """A function's own property, or the Globals value it inherits."""
    properties = resource(template, function)["Properties"]
    return properties.get(name, template["Globals"]["Function"].get(name))


def role_statements(deployed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = deployed["Resources"][f"{function}Role"]["Properties"]
    return [statement for policy in role.get("Policies", []) for statement in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any) -> Iterator[str]:
    """Every logical id a value points at through Ref or Fn::GetAtt, however deeply nested."""
    if isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                yield argument
            elif key == "Fn::GetAtt":
                yield as_list(argument)[0].split(".")[0]
            else:
                yield from references(argument)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


# --- Parameters and settings -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "default"), SPEC_DEFAULTS.items())
def test_spec_parameters_have_their_documented_defaults(template: dict[str, Any], name: str, default: Any) -> None:
    assert template["Parameters"][name]["Default"] == default


@pytest.mark.parametrize("name", SPEC_FREE_FORM)
def test_free_form_parameters_have_a_default(template: dict[str, Any], name: str) -> None:
    assert "Default" in template["Parameters"][name]


# (parameter, value, accepted?): CloudFormation matches AllowedPattern against the whole value (Java's
# matches()), as re.fullmatch does; the patterns use only syntax both read alike.
PARAMETER_VALUES = [
    ("ReauthUrlTemplate", "", True),
    ("ReauthUrlTemplate", "https://app.acme.io/reconnect?email={email}&grant={account_id}", True),
    ("ReauthUrlTemplate", "https://app.acme.io/r/{provider}/{account_id}", True),
    ("ReauthUrlTemplate", "javascript:alert(document.domain)//{email}", False),
    ("ReauthUrlTemplate", "JavaScript:alert(1)", False),
    ("ReauthUrlTemplate", "data:text/html,<script>alert(1)</script>", False),
    ("ReauthUrlTemplate", "http://app.acme.io/reconnect", False),
    ("ReauthUrlTemplate", 'https://app.acme.io/" onclick="alert(1)', False),
    ("ReauthUrlTemplate", "https://app.acme.io/a b", False),
    ("ReauthUrlTemplate", "https://app.acme.io/\r\nX: y", False),
    ("AppName", "Account Doctor", True),
    ("AppName", "Acme & Söhne (dev)", True),
    ("AppName", "Acme\r\nBcc: everyone@example.com", False),
    ("AppName", "Acme\nSync", False),
    ("AppName", "", False),
    ("AppName", "A" * 101, False),
]


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    PARAMETER_VALUES,
    ids=[f"{name}-{'ok' if ok else 'refused'}-{n}" for n, (name, _, ok) in enumerate(PARAMETER_VALUES)],
)
def test_parameters_that_reach_an_email_refuse_what_would_change_it(
    template: dict[str, Any], name: str, value: str, accepted: bool
) -> None:
    pattern = template["Parameters"][name]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted
    assert re.fullmatch(pattern, str(template["Parameters"][name]["Default"]))


def test_notification_mode_is_send_or_dry_run(template: dict[str, Any]) -> None:
    assert sorted(template["Parameters"]["NotificationMode"]["AllowedValues"]) == ["dry-run", "send"]


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    """A function's variables: the Globals plus its own (its own win, as in Lambda)."""
    own = resource(template, function)["Properties"].get("Environment", {}).get("Variables", {})
    return {**template["Globals"]["Function"]["Environment"]["Variables"], **own}


def test_every_spec_parameter_reaches_the_functions(template: dict[str, Any]) -> None:
    passed = {
        ref for function in FUNCTIONS for value in environment(template, function).values() for ref in references(value)
    }
    assert (set(SPEC_DEFAULTS) | set(SPEC_FREE_FORM)) - set(USED_BY_RESOURCES) <= passed


@pytest.mark.parametrize("parameter", USED_BY_RESOURCES)
def test_parameters_for_the_stack_itself_are_used_by_its_resources(template: dict[str, Any], parameter: str) -> None:
    used = set(references(template["Resources"])) | set(re.findall(r"\$\{(\w+)\}", json.dumps(template["Resources"])))
    assert parameter in used


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_reads_only_the_secret_it_is_told_about(
    deployed: dict[str, Any], template: dict[str, Any], function: str
) -> None:
    named = set(references(environment(template, function).get("NYLAS_SECRET_NAME")))
    for secret in named:
        assert resource(template, secret)["Type"] == "AWS::SecretsManager::Secret"
    readable = {
        ref
        for statement in role_statements(deployed, function)
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        for ref in references(statement["Resource"])
    }
    assert readable == named


def test_traces_never_carry_a_functions_answer(template: dict[str, Any]) -> None:
    """A read API answer or a verdict holds customer addresses: X-Ray gets timings and errors only."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # The name Powertools' Tracer reads, and a value it reads as false.
    assert resolve_truthy_env_var_choice(env=variables[constants.TRACER_CAPTURE_RESPONSE_ENV]) is False


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_run_python_3_11_on_arm64(template: dict[str, Any], function: str) -> None:
    assert function_setting(template, function, "Runtime") == "python3.11"
    assert function_setting(template, function, "Architectures") == ["arm64"]


def test_shared_layer_is_built_for_the_functions_runtime(template: dict[str, Any]) -> None:
    layer = resource(template, "SharedLayer")
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.11", "BuildArchitecture": "arm64"}


# --- Queue ---------------------------------------------------------------------------------------


def test_queue_moves_a_message_to_the_dlq_after_five_receives(template: dict[str, Any]) -> None:
    redrive = resource(template, "DiagnosisQueue")["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DiagnosisDLQ", "Arn"]}
    assert resource(template, "DiagnosisDLQ")["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("queue", ["DiagnosisQueue", "ReleaseQueue"])
def test_queue_visibility_covers_six_diagnosis_timeouts(template: dict[str, Any], queue: str) -> None:
    timeout = function_setting(template, "DiagnosisFunction", "Timeout")
    assert resource(template, queue)["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_releases_that_keep_failing_join_the_diagnosis_dead_letters(template: dict[str, Any]) -> None:
    # Where DeadLetterQueueAlarm watches and `account-doctor redrive` looks.
    redrive = resource(template, "ReleaseQueue")["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["DiagnosisDLQ", "Arn"]}, "maxReceiveCount": 5}


@pytest.mark.parametrize("queue", ["DiagnosisQueue", "ReleaseQueue", "DiagnosisDLQ"])
def test_queues_are_encrypted_at_rest(template: dict[str, Any], queue: str) -> None:
    properties = resource(template, queue)["Properties"]
    assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties


def event_source_mappings(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{queue logical id: mapping properties} of every SQS trigger, however declared."""
    mappings = {
        item["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: item["Properties"]
        for item in template["Resources"].values()
        if item["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    for function in FUNCTIONS:
        for event in resource(template, function)["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                mappings[event["Properties"]["Queue"]["Fn::GetAtt"][0]] = {"FunctionName": {"Ref": function}}
    return mappings


def test_diagnosis_consumes_its_queue_and_the_release_queue_reporting_partial_failures(
    template: dict[str, Any],
) -> None:
    mappings = event_source_mappings(template)
    assert set(mappings) == {"DiagnosisQueue", "ReleaseQueue"}
    for mapping in mappings.values():
        assert mapping["FunctionName"] == {"Ref": "DiagnosisFunction"}
        assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
        assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2  # Lambda's minimum


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_may_consume_only_the_queues_it_is_triggered_by(
    deployed: dict[str, Any], template: dict[str, Any], function: str
) -> None:
    consumed: dict[str, set[str]] = {}
    for statement in role_statements(deployed, function):
        for action in set(as_list(statement["Action"])) & SQS_CONSUMING:
            consumed.setdefault(action, set()).update(references(statement["Resource"]))
    triggers = {
        queue
        for queue, mapping in event_source_mappings(template).items()
        if mapping["FunctionName"]["Ref"] == function
    }
    assert consumed == (dict.fromkeys(SQS_CONSUMING, triggers) if triggers else {})
    # Dead letters are for an operator's redrive (with their own credentials), never a function's.
    assert not any("DLQ" in queue for queues in consumed.values() for queue in queues)


# --- API -----------------------------------------------------------------------------------------


def api_routes(template: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(method, path) -> (function, effective authorizer) for every API Gateway route."""
    routes = {}
    for function in FUNCTIONS:
        for event in resource(template, function)["Properties"].get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            properties = event["Properties"]
            api = resource(template, properties["RestApiId"]["Ref"])
            default = api["Properties"].get("Auth", {}).get("DefaultAuthorizer", "NONE")
            authorizer = properties.get("Auth", {}).get("Authorizer", default)
            routes[(properties["Method"].upper(), properties["Path"])] = (function, authorizer)
    return routes


def test_accounts_routes_require_iam_and_only_the_webhook_is_public(template: dict[str, Any]) -> None:
    assert api_routes(template) == {
        ("GET", "/webhook"): ("WebhookFunction", "NONE"),
        ("POST", "/webhook"): ("WebhookFunction", "NONE"),
        # SPEC §6: the read API, and the incident actions, all for IAM-signed callers.
        ("GET", "/accounts/{account_id}"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/domains/{domain}"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/accounts"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/incidents"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/incidents/{incident_id}"): ("AccountsApiFunction", "AWS_IAM"),
        ("POST", "/incidents/{incident_id}/release"): ("AccountsApiFunction", "AWS_IAM"),
        ("POST", "/incidents/{incident_id}/resolve"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/reports/recovery"): ("AccountsApiFunction", "AWS_IAM"),
        ("GET", "/health"): ("AccountsApiFunction", "AWS_IAM"),
    }


def test_api_access_logs_go_to_a_log_group_with_retention(template: dict[str, Any]) -> None:
    setting = resource(template, "Api")["Properties"]["AccessLogSetting"]
    (group,) = references(setting["DestinationArn"])
    assert resource(template, group)["Type"] == "AWS::Logs::LogGroup"
    assert resource(template, group)["Properties"]["RetentionInDays"] > 0


# --- Least privilege ------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_statement_allows_every_action_on_every_resource(deployed: dict[str, Any], function: str) -> None:
    for statement in role_statements(deployed, function):
        actions = as_list(statement["Action"])
        wildcard_action = any(action == "*" or action.endswith(":*") for action in actions)
        assert not (wildcard_action and "*" in as_list(statement["Resource"])), statement


@pytest.mark.parametrize("function", FUNCTIONS)
def test_roles_carry_only_logging_tracing_and_polling_managed_policies(deployed: dict[str, Any], function: str) -> None:
    managed = set(deployed["Resources"][f"{function}Role"]["Properties"].get("ManagedPolicyArns", []))
    assert managed <= ALLOWED_MANAGED_POLICIES


def test_webhook_may_only_send_to_the_queue_and_read_its_own_secret(
    deployed: dict[str, Any], template: dict[str, Any]
) -> None:
    statements = role_statements(deployed, "WebhookFunction")
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(references(statement["Resource"]))
    (secret,) = references(environment(template, "WebhookFunction")["NYLAS_SECRET_NAME"])
    # Not NylasSecret: the internet-facing function must not be able to read api_key (SPEC §7).
    assert secret == "NylasWebhookSecret"
    assert granted == {"sqs:SendMessage*": {"DiagnosisQueue"}, "secretsmanager:GetSecretValue": {secret}}


def test_only_the_webhook_reads_the_verification_keys_and_never_the_api_keys(deployed: dict[str, Any]) -> None:
    readers: dict[str, set[str]] = {}
    for function in FUNCTIONS:
        for statement in role_statements(deployed, function):
            if "secretsmanager:GetSecretValue" in as_list(statement["Action"]):
                for secret in references(statement["Resource"]):
                    readers.setdefault(secret, set()).add(function)
    assert readers["NylasWebhookSecret"] == {"WebhookFunction"}
    assert "WebhookFunction" not in readers["NylasSecret"]
    assert "DiagnosisFunction" in readers["NylasSecret"]


@pytest.mark.parametrize(
    ("secret", "keys", "output"),
    [
        ("NylasSecret", ["api_key", "client_id", "client_secret", "redirect_uri"], "NylasSecretName"),
        ("NylasWebhookSecret", ["webhook_secret", "client_secret"], "NylasWebhookSecretName"),
    ],
)
def test_the_stack_never_writes_a_secret_value(
    template: dict[str, Any], secret: str, keys: list[str], output: str
) -> None:
    """A SecretString (or a generated one) in the template would replace the operator's credentials whenever it
    changes; the stack creates each secret empty, names it in an output, and says which keys to put in."""
    properties = resource(template, secret)["Properties"]
    assert "SecretString" not in properties
    assert "GenerateSecretString" not in properties
    assert template["Outputs"][output]["Value"] == {"Ref": secret}
    for key in keys:
        assert key in properties["Description"]
        assert key in template["Outputs"][output]["Description"]
    assert ("api_key" in properties["Description"]) == (secret == "NylasSecret")


def test_ses_sending_is_scoped_to_the_sender_identity(deployed: dict[str, Any]) -> None:
    ses = [
        statement
        for function in FUNCTIONS
        for statement in role_statements(deployed, function)
        if any(action.lower().startswith("ses:") for action in as_list(statement["Action"]))
    ]
    assert ses, "the diagnosis function must be allowed to send email"
    for statement in ses:
        assert [action.lower() for action in as_list(statement["Action"])] == ["ses:sendemail"]
        # SESv2 SendEmail with ConfigurationSetName is authorised against the identity and the configuration set.
        assert sorted(as_list(statement["Resource"]), key=str) == [
            {"Fn::Sub": CONFIGURATION_SET_ARN},
            {"Fn::Sub": SENDER_IDENTITY_ARN},
        ]


def dynamodb_grants(deployed: dict[str, Any], function: str) -> dict[str, set[str]]:
    """{"Table" or "Table/index/Name": {actions without the dynamodb: prefix}} of a function's role."""
    granted: dict[str, set[str]] = {}
    for statement in role_statements(deployed, function):
        actions = [action for action in as_list(statement["Action"]) if action.lower().startswith("dynamodb:")]
        if not actions:
            continue
        assert statement["Effect"] == "Allow"
        for arn in as_list(statement["Resource"]):
            target = table_or_index(arn)
            granted.setdefault(target, set()).update(action.split(":", 1)[1] for action in actions)
    return granted


def table_or_index(arn: Any) -> str:
    """`!GetAtt T.Arn` -> "T"; `!Sub ${T.Arn}/index/I` -> "T/index/I"; anything else (a wildcard) fails."""
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        attribute_of = arn["Fn::GetAtt"]
        logical_id, attribute = attribute_of[:2] if isinstance(attribute_of, list) else attribute_of.split(".", 1)
        assert attribute == "Arn", arn
        return str(logical_id)
    if isinstance(arn, dict) and isinstance(arn.get("Fn::Sub"), str):
        text: str = arn["Fn::Sub"]
        table, _, rest = text.partition(".Arn}")
        assert table.startswith("${"), arn
        assert rest.startswith("/index/"), arn
        assert "*" not in rest, arn
        return table[2:] + rest
    raise AssertionError(f"a DynamoDB grant on {arn!r}: name one table or index of this template")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_may_make_exactly_the_dynamodb_calls_it_makes(deployed: dict[str, Any], function: str) -> None:
    assert function in DYNAMODB_GRANTS, f"list {function}'s DynamoDB calls per table and index in DYNAMODB_GRANTS"
    assert dynamodb_grants(deployed, function) == DYNAMODB_GRANTS[function]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_may_scan_batch_write_or_delete_data(deployed: dict[str, Any], function: str) -> None:
    for target, actions in dynamodb_grants(deployed, function).items():
        never = NEVER_GRANTED - ({"BatchWriteItem"} if (function, target) in BATCH_WRITTEN else set())
        assert not actions & never, (target, actions)
        assert "*" not in actions, target
        if "DeleteItem" in actions:
            assert target in DELETABLE, target


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_granted_index_exists(deployed: dict[str, Any], template: dict[str, Any], function: str) -> None:
    for target in dynamodb_grants(deployed, function):
        table, _, index = target.partition("/index/")
        assert resource(template, table)["Type"] == "AWS::DynamoDB::Table"
        if index:
            indexes = {
                gsi["IndexName"] for gsi in resource(template, table)["Properties"].get("GlobalSecondaryIndexes", [])
            }
            assert index in indexes, f"{function} may query {target}, which {table} does not define"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_that_publish_may_put_events_on_the_stack_bus_only(
    deployed: dict[str, Any], template: dict[str, Any], function: str
) -> None:
    publishes = "EVENT_BUS_NAME" in environment(template, function)
    targets = [
        set(references(statement["Resource"]))
        for statement in role_statements(deployed, function)
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    assert targets == ([{"EventBus"}] if publishes else [])


# Who may put what on which queue: account events come from the internet-facing webhook and the sweep only;
# releases from the read API (and the diagnosis, queueing a release's next page), on their own queue, which
# the consumer takes releases from and nothing else.
QUEUE_SENDERS = {
    "WebhookFunction": {"DiagnosisQueue"},
    "SweepFunction": {"DiagnosisQueue"},
    "AccountsApiFunction": {"ReleaseQueue"},
    "DiagnosisFunction": {"ReleaseQueue"},
    "SesEventsFunction": {"SesEventsDLQ"},  # its asynchronous invocations' dead letters (DeadLetterQueue)
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_may_send_only_to_its_queue(deployed: dict[str, Any], function: str) -> None:
    sends = {
        queue
        for statement in role_statements(deployed, function)
        if any(action.startswith("sqs:SendMessage") for action in as_list(statement["Action"]))
        for queue in references(statement["Resource"])
    }
    assert sends == QUEUE_SENDERS[function]


# --- Data ----------------------------------------------------------------------------------------


def test_idempotency_records_expire(template: dict[str, Any]) -> None:
    ttl = resource(template, "IdempotencyTable")["Properties"]["TimeToLiveSpecification"]
    # Powertools' DynamoDBPersistenceLayer writes its expiry to the attribute "expiration".
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


@pytest.mark.parametrize("table", ["EventsTable", "VerdictsTable", "NotificationsTable"])
def test_data_tables_have_point_in_time_recovery(template: dict[str, Any], table: str) -> None:
    properties = resource(template, table)["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_logs_to_a_group_with_retention(template: dict[str, Any], function: str) -> None:
    groups = [
        item["Properties"]
        for item in template["Resources"].values()
        if item["Type"] == "AWS::Logs::LogGroup"
        and item["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1
    assert groups[0]["RetentionInDays"] > 0


# --- Suppressions --------------------------------------------------------------------------------


def test_every_accepted_finding_has_a_written_reason(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, item in template["Resources"].items()
        for skip in item.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "the template suppresses nothing: drop this test or the suppressions were lost"
    for logical_id, skip in skips:
        assert skip["id"].startswith(("CKV_", "CKV2_")), (logical_id, skip)
        assert len(skip.get("comment", "").split()) >= 8, f"{logical_id} skips {skip['id']} without a reason"


def test_webhook_bodies_reach_the_function_as_the_signed_bytes(template: dict[str, Any]) -> None:
    # Without a binary media type API Gateway hands gzip bodies over as mangled text, and the
    # signature (an HMAC of the exact bytes Nylas sent) can never match.
    assert template["Resources"]["Api"]["Properties"]["BinaryMediaTypes"] == ["*~1*"]
