// DynamicsWebApi (`dynamics-web-api`, a maintained Dataverse Web API client; Microsoft publishes
// no Node SDK for the Web API) against `ferry sandbox`'s Dataverse emulator: paging through
// @odata.nextLink, upserts by alternate key in a $batch with per-request results, read-back by
// key and by id, and the errors ferry's Dynamics connector relies on; for deals, owners and
// notes: systemusers, ownerid binds, opportunities with their stages and the WinOpportunity /
// LoseOpportunity actions, and annotations.
//
// The token comes from a plain `fetch` to the emulator's Entra ID token endpoint (client
// credentials): MSAL, which a real app would use, validates its authority against Microsoft's
// cloud and would not accept a loopback http URL. DynamicsWebApi takes the token through its
// `onTokenRefresh` callback, as with MSAL.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { DynamicsWebApi } from "dynamics-web-api";
import { startSandbox, thrown } from "./lib/sandbox.mjs";

const TENANT = "00000000-0000-4000-8000-0000000d7e4a";
const KEY = "ferry_sourceid";

async function token(sb) {
  const res = await fetch(`${sb.url}/${TENANT}/oauth2/v2.0/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: sb.env.DYNAMICS_CLIENT_ID,
      client_secret: sb.env.DYNAMICS_CLIENT_SECRET,
      scope: `${sb.url}/.default`,
    }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.token_type, "Bearer");
  return body.access_token;
}

function client(sb, onTokenRefresh) {
  return new DynamicsWebApi({ serverUrl: sb.url, dataApi: { version: "9.2" }, onTokenRefresh });
}

describe("dynamics: dynamics-web-api", () => {
  let sb;
  let api;
  before(async () => {
    sb = await startSandbox("dynamics", { records: 300 });
    const access = await token(sb);
    api = client(sb, async () => access);
  });
  after(() => sb?.stop());

  test("WhoAmI answers with the caller's ids (the connector's check)", async () => {
    const me = await api.callFunction("WhoAmI");
    assert.match(me.UserId, /^[0-9a-f-]{36}$/);
    assert.match(me.OrganizationId, /^[0-9a-f-]{36}$/);
  });

  test("pages through @odata.nextLink to the end, as many as were seeded", async () => {
    for (const [collection, id, expected] of [
      ["contacts", "contactid", sb.seeded.contacts],
      ["accounts", "accountid", sb.seeded.companies],
    ]) {
      const ids = new Set();
      let page = await api.retrieveMultiple({ collection, select: [id], maxPageSize: 50 });
      let pages = 1;
      for (;;) {
        assert.ok(page.oDataContext.endsWith(`$metadata#${collection}(${id})`), page.oDataContext);
        for (const r of page.value) {
          assert.match(r[id], /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
          assert.match(r["@odata.etag"], /^W\/"\d+"$/);
          ids.add(r[id]);
        }
        if (!page.oDataNextLink) break;
        // The nextLink is followed exactly as returned, with the same page size.
        page = await api.retrieveMultiple({ collection, maxPageSize: 50 }, page.oDataNextLink);
        pages += 1;
      }
      assert.equal(ids.size, expected);
      assert.ok(pages > 1);
    }
    // The client's own paging helper agrees.
    const all = await api.retrieveAll({ collection: "contacts", select: ["contactid"], maxPageSize: 100 });
    assert.equal(all.value.length, sb.seeded.contacts);
    const counted = await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], count: true, maxPageSize: 1 });
    assert.equal(counted.oDataCount, sb.seeded.contacts);
  });

  test("consent: donotemail/donotbulkemail are booleans, true for the seeded opt-outs", async () => {
    const all = await api.retrieveAll({ collection: "contacts", select: ["donotemail", "donotbulkemail"], maxPageSize: 500 });
    assert.ok(all.value.every((c) => typeof c.donotemail === "boolean" && typeof c.donotbulkemail === "boolean"));
    const out = all.value.filter((c) => c.donotbulkemail);
    assert.ok(out.length > 0);
    assert.ok(out.every((c) => c.donotemail));
  });

  test("$batch upserts by alternate key with continue-on-error: a result per request, then read back", async () => {
    // The alternate key ferry's `prepare` checks: EntityDefinitions(LogicalName='contact')/Keys.
    const keys = await api.retrieve({ collection: "EntityDefinitions", key: "LogicalName='contact'", navigationProperty: "Keys" });
    assert.ok(keys.value.some((k) => k.KeyAttributes.includes(KEY) && k.EntityKeyIndexStatus === "Active"));
    await api.upsert({ collection: "accounts", key: `${KEY}='sdk-acc-1'`, data: { name: "Sdk Co" } });

    // As the connector sends them: no change set, so each request succeeds or fails alone.
    api.startBatch();
    const upsert = (key, data) =>
      api.upsert({ collection: "contacts", key: `${KEY}='${key}'`, data, returnRepresentation: true, select: ["contactid"], inChangeSet: false });
    upsert("sdk-1", {
      lastname: "Lovelace",
      firstname: "Ada",
      emailaddress1: "ada@sdk.example.com",
      donotemail: true,
      donotbulkemail: true,
      "parentcustomerid_account@odata.bind": `/accounts(${KEY}='sdk-acc-1')`,
    });
    upsert("sdk-2", { lastname: "x".repeat(51) });
    upsert("sdk-3", { lastname: "Hopper", emailaddress1: "grace@sdk.example.com" });
    const results = await api.executeBatch({ continueOnError: true });
    assert.equal(results.length, 3);
    assert.match(results[0].contactid, /^[0-9a-f-]{36}$/);
    assert.ok(results[1] instanceof Error);
    assert.equal(results[1].status, 400);
    assert.equal(results[1].error.code, "0x80044331");
    assert.match(results[2].contactid, /^[0-9a-f-]{36}$/);

    // Again: an update of the same row (the key value is in the URL only).
    const again = await api.upsert({ collection: "contacts", key: `${KEY}='sdk-1'`, data: { jobtitle: "Analyst" }, returnRepresentation: true, select: ["contactid"] });
    assert.equal(again.contactid, results[0].contactid);

    const byKey = await api.retrieve({
      collection: "contacts",
      key: `${KEY}='sdk-1'`,
      select: ["contactid", KEY, "jobtitle", "donotemail", "donotbulkemail"],
      expand: [{ property: "parentcustomerid_account", select: [KEY] }],
    });
    assert.equal(byKey[KEY], "sdk-1");
    assert.equal(byKey.jobtitle, "Analyst");
    assert.equal(byKey.donotbulkemail, true);
    assert.equal(byKey.parentcustomerid_account[KEY], "sdk-acc-1");
    const byId = await api.retrieve({ collection: "contacts", key: results[2].contactid, select: [KEY, "donotemail"] });
    assert.equal(byId[KEY], "sdk-3");
    assert.equal(byId.donotemail, false, "no opt-out invented");
    // Without return=representation Dataverse answers 204 with OData-EntityId, which the
    // client parses into the new id (outside and inside a $batch).
    const createdId = await api.create({ collection: "contacts", data: { lastname: "Plain" } });
    assert.match(createdId, /^[0-9a-f-]{36}$/);
    api.startBatch();
    api.create({ collection: "contacts", data: { lastname: "Batched" }, inChangeSet: false });
    const [batchedId] = await api.executeBatch();
    assert.match(batchedId, /^[0-9a-f-]{36}$/);
    assert.equal((await api.retrieve({ collection: "contacts", key: batchedId, select: ["lastname"] })).lastname, "Batched");
    const filtered = await api.retrieveMultiple({
      collection: "contacts",
      select: [KEY],
      filter: `Microsoft.Dynamics.CRM.In(PropertyName='${KEY}',PropertyValues=['sdk-1','sdk-2','sdk-3'])`,
    });
    assert.deepEqual(filtered.value.map((r) => r[KEY]).sort(), ["sdk-1", "sdk-3"]);
  });

  test("an invalid record is the client's error with Dataverse's status and code", async () => {
    const e = await thrown(() => api.create({ collection: "contacts", data: { lastname: "y".repeat(51) } }));
    assert.equal(e.status, 400);
    assert.equal(e.code, "0x80044331");
    assert.match(e.message, /maximum allowed length of '50'/);
    const missing = await thrown(() => api.update({ collection: "contacts", key: "00000000-0000-4000-8000-00000000beef", data: { lastname: "Z" } }));
    assert.equal(missing.status, 404);
    assert.equal(missing.code, "0x80040217");
  });

  test("column definitions: the seeded custom columns, their types and the choices' options", async () => {
    const attrs = await api.retrieveAttributes({
      entityKey: "LogicalName='account'",
      select: ["LogicalName", "SchemaName", "AttributeType", "IsCustomAttribute", "IsValidForCreate", "DisplayName"],
    });
    const by = (name) => attrs.value.find((a) => a.LogicalName === name);
    assert.equal(by("new_region").AttributeType, "String");
    assert.equal(by("new_region").SchemaName, "new_Region");
    assert.equal(by("new_region").IsCustomAttribute, true);
    assert.equal(by("new_region").DisplayName.UserLocalizedLabel.Label, "Region");
    assert.equal(by("new_seats").AttributeType, "Integer");
    assert.equal(by("new_tier").AttributeType, "Picklist");
    assert.equal(by("industrycode").IsCustomAttribute, false);
    assert.equal(by("createdon").IsValidForCreate, false);
    assert.match(by("new_region").MetadataId, /^[0-9a-f-]{36}$/);

    const choices = await api.retrieveAttributes({
      entityKey: "LogicalName='account'",
      castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
      select: ["LogicalName"],
      expand: [{ property: "OptionSet", select: ["Options"] }],
    });
    const tier = choices.value.find((a) => a.LogicalName === "new_tier");
    assert.deepEqual(
      tier.OptionSet.Options.map((o) => [o.Value, o.Label.UserLocalizedLabel.Label]),
      [[100000000, "Gold"], [100000001, "Silver"], [100000002, "Bronze"]],
    );
    const industry = choices.value.find((a) => a.LogicalName === "industrycode");
    assert.equal(industry.OptionSet.Options.length, 33);
    assert.equal(industry.OptionSet.Options[0].Label.UserLocalizedLabel.Label, "Accounting");

    const one = await api.retrieveAttribute({
      entityKey: "LogicalName='contact'",
      attributeKey: "LogicalName='new_loyaltypoints'",
      castType: "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
      select: ["LogicalName", "MinValue", "MaxValue"],
    });
    assert.equal(one.LogicalName, "new_loyaltypoints");
    assert.equal(one.MaxValue, 2147483647);

    // Seeded records carry the custom values, returned when selected.
    const page = await api.retrieveMultiple({ collection: "accounts", select: ["new_region", "new_seats", "new_tier"], maxPageSize: 200 });
    assert.ok(page.value.some((a) => typeof a.new_region === "string"));
    assert.ok(page.value.some((a) => Number.isInteger(a.new_seats)));
    assert.ok(page.value.every((a) => a.new_tier === null || [100000000, 100000001, 100000002].includes(a.new_tier)));
    // A value outside the choice is refused.
    const e = await thrown(() => api.upsert({ collection: "accounts", key: `${KEY}='sdk-tier'`, data: { name: "T", new_tier: 7 } }));
    assert.equal(e.status, 400);
    assert.equal(e.code, "0x8004431a");
  });

  test("createAttribute: a new choice column answers 204 with its id, is described, and takes values", async () => {
    const label = (text) => ({ LocalizedLabels: [{ Label: text, LanguageCode: 1033 }] });
    const id = await api.createAttribute({
      entityKey: "LogicalName='contact'",
      data: {
        "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        AttributeType: "Picklist",
        AttributeTypeName: { Value: "PicklistType" },
        SchemaName: "new_SdkSegment",
        DisplayName: label("Sdk Segment"),
        RequiredLevel: { Value: "None" },
        OptionSet: { IsGlobal: false, OptionSetType: "Picklist", Options: [{ Value: null, Label: label("Retail") }, { Value: null, Label: label("Wholesale") }] },
      },
    });
    assert.match(id, /^[0-9a-f-]{36}$/);
    const created = await api.retrieveAttribute({
      entityKey: "LogicalName='contact'",
      attributeKey: id,
      castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
      select: ["LogicalName", "SchemaName", "IsCustomAttribute"],
      expand: [{ property: "OptionSet" }],
    });
    assert.equal(created.LogicalName, "new_sdksegment");
    assert.equal(created.IsCustomAttribute, true);
    assert.deepEqual(created.OptionSet.Options.map((o) => o.Value), [100000000, 100000001]);
    const row = await api.upsert({
      collection: "contacts",
      key: `${KEY}='sdk-seg'`,
      data: { lastname: "Seg", new_sdksegment: 100000001 },
      returnRepresentation: true,
      select: ["new_sdksegment"],
    });
    assert.equal(row.new_sdksegment, 100000001);
    const dup = await thrown(() =>
      api.createAttribute({
        entityKey: "LogicalName='contact'",
        data: { "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", SchemaName: "new_SdkSegment", DisplayName: label("Again") },
      }),
    );
    assert.equal(dup.status, 400);
  });

  test("systemusers: the account's users with $select/$filter, a disabled one, and WhoAmI's user", async () => {
    const users = await api.retrieveAll({
      collection: "systemusers",
      select: ["fullname", "internalemailaddress", "isdisabled", "accessmode"],
      maxPageSize: 3,
    });
    assert.ok(users.value.length > 3, "paged through nextLink");
    const me = await api.callFunction("WhoAmI");
    const app = users.value.find((u) => u.systemuserid === me.UserId);
    assert.equal(app.accessmode, 4, "the application user is non-interactive");
    const goro = users.value.find((u) => u.internalemailaddress === "goro.tanaka@ferry-demo.example");
    assert.equal(goro.isdisabled, true);
    const chloe = await api.retrieveMultiple({
      collection: "systemusers",
      select: ["internalemailaddress"],
      filter: "internalemailaddress eq 'chloe.martin@ferry-demo.example' and isdisabled eq false",
    });
    assert.equal(chloe.value.length, 1);
    assert.equal(chloe.value[0].internalemailaddress, "CHLOE.MARTIN@FERRY-DEMO.EXAMPLE", "held in capitals, matched ignoring case");
  });

  test("owners: ownerid@odata.bind sets _ownerid_value; unknown and disabled users are refused", async () => {
    const user = async (email) =>
      (await api.retrieveMultiple({ collection: "systemusers", select: ["systemuserid"], filter: `internalemailaddress eq '${email}'` })).value[0].systemuserid;
    const ben = await user("ben.okafor@ferry-demo.example");
    const row = await api.upsert({
      collection: "accounts",
      key: `${KEY}='sdk-owned'`,
      data: { name: "Owned", "ownerid@odata.bind": `/systemusers(${ben})` },
      returnRepresentation: true,
      select: ["_ownerid_value"],
    });
    assert.equal(row._ownerid_value, ben);
    const me = await api.callFunction("WhoAmI");
    const plain = await api.create({ collection: "contacts", data: { lastname: "Unowned" }, returnRepresentation: true, select: ["_ownerid_value"] });
    assert.equal(plain._ownerid_value, me.UserId, "the caller by default");
    const unknown = await thrown(() =>
      api.update({ collection: "accounts", key: row.accountid, data: { "ownerid@odata.bind": "/systemusers(5e5e5e5e-0000-0000-0000-0000000000ff)" } }),
    );
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, "0x80040217");
    assert.match(unknown.message, /^systemuser With Id = 5e5e5e5e-0000-0000-0000-0000000000ff Does Not Exist$/);
    const goro = await user("goro.tanaka@ferry-demo.example");
    const disabled = await thrown(() => api.update({ collection: "accounts", key: row.accountid, data: { "ownerid@odata.bind": `/systemusers(${goro})` } }));
    assert.equal(disabled.status, 400);
    assert.equal(disabled.code, "0x80040203");
  });

  test("opportunities: seeded ones page through nextLink in every state and stage; the stages are the process's", async () => {
    const all = await api.retrieveAll({
      collection: "opportunities",
      select: ["name", "statecode", "statuscode", "salesstage", "_stageid_value", "_customerid_value", "_ownerid_value"],
      maxPageSize: 40,
    });
    assert.ok(all.value.length > 40);
    for (const state of [0, 1, 2]) assert.ok(all.value.some((o) => o.statecode === state), `statecode ${state}`);
    for (const stage of [0, 1, 2, 3]) assert.ok(all.value.some((o) => o.salesstage === stage), `salesstage ${stage}`);
    const stages = await api.retrieveMultiple({ collection: "processstages", select: ["stagename", "stagecategory", "_processid_value"] });
    assert.deepEqual(stages.value.map((s) => s.stagename), ["Qualify", "Develop", "Propose", "Close"]);
    const byId = new Map(stages.value.map((s) => [s.processstageid, s.stagecategory]));
    assert.ok(all.value.every((o) => byId.get(o._stageid_value) === o.salesstage));
    const flows = await api.retrieveMultiple({ collection: "workflows", select: ["name"], filter: "category eq 4" });
    assert.equal(flows.value[0].name, "Opportunity Sales Process");
    assert.equal(flows.value[0].workflowid, stages.value[0]._processid_value);
    const won = await api.retrieveMultiple({ collection: "opportunities", select: ["name"], filter: "statecode eq 1", count: true });
    assert.ok(won.oDataCount > 0 && won.oDataCount < all.value.length);
  });

  test("opportunities: upsert by key in a $batch with binds, read back, win, lose and the closed-deal errors", async () => {
    await api.upsert({ collection: "accounts", key: `${KEY}='sdk-deal-acc'`, data: { name: "Deal Co" } });
    await api.upsert({ collection: "contacts", key: `${KEY}='sdk-deal-con'`, data: { lastname: "Buyer" } });
    const eur = (await api.retrieveMultiple({ collection: "transactioncurrencies", filter: "isocurrencycode eq 'EUR'" })).value[0];
    api.startBatch();
    const upsert = (key, data) =>
      api.upsert({ collection: "opportunities", key: `${KEY}='${key}'`, data, returnRepresentation: true, select: ["opportunityid"], inChangeSet: false });
    upsert("sdk-deal-1", {
      name: "Big renewal",
      estimatedvalue: 9999.5,
      estimatedclosedate: "2027-06-30",
      salesstage: 1,
      "customerid_account@odata.bind": `/accounts(${KEY}='sdk-deal-acc')`,
      "parentaccountid@odata.bind": `/accounts(${KEY}='sdk-deal-acc')`,
      "parentcontactid@odata.bind": `/contacts(${KEY}='sdk-deal-con')`,
      "transactioncurrencyid@odata.bind": `/transactioncurrencies(${eur.transactioncurrencyid})`,
    });
    upsert("sdk-deal-2", { name: "x".repeat(301) });
    upsert("sdk-deal-3", { name: "Small one" });
    const results = await api.executeBatch({ continueOnError: true });
    assert.equal(results.length, 3);
    assert.match(results[0].opportunityid, /^[0-9a-f-]{36}$/);
    assert.ok(results[1] instanceof Error);
    assert.equal(results[1].status, 400);
    assert.equal(results[1].error.code, "0x80044331");
    assert.match(results[2].opportunityid, /^[0-9a-f-]{36}$/);

    const deal = await api.retrieve({
      collection: "opportunities",
      key: `${KEY}='sdk-deal-1'`,
      select: ["name", "estimatedvalue", "estimatedclosedate", "stepname", "_customerid_value", "_parentcontactid_value", "_transactioncurrencyid_value", "statecode"],
    });
    assert.equal(deal.estimatedvalue, 9999.5);
    assert.equal(deal.estimatedclosedate, "2027-06-30");
    assert.equal(deal.stepname, "2-Develop");
    assert.equal(deal._transactioncurrencyid_value, eur.transactioncurrencyid);
    assert.equal(deal.statecode, 0);
    const withCodes = await api.retrieve({
      collection: "opportunities",
      key: deal.opportunityid,
      select: ["name"],
      expand: [
        { property: "transactioncurrencyid", select: ["isocurrencycode"] },
        { property: "parentcontactid", select: [KEY] },
      ],
    });
    assert.equal(withCodes.transactioncurrencyid.isocurrencycode, "EUR");
    assert.equal(withCodes.parentcontactid[KEY], "sdk-deal-con");
    await api.update({ collection: "opportunities", key: deal.opportunityid, data: { salesstage: 3 } });

    const closeBy = (status, id) => ({ Status: status, OpportunityClose: { subject: "Closed", "opportunityid@odata.bind": `/opportunities(${id})` } });
    const wrong = await thrown(() => api.callAction({ actionName: "WinOpportunity", action: closeBy(5, deal.opportunityid) }));
    assert.equal(wrong.status, 400);
    await api.callAction({ actionName: "WinOpportunity", action: closeBy(3, deal.opportunityid) });
    const won = await api.retrieve({ collection: "opportunities", key: deal.opportunityid, select: ["statecode", "statuscode", "actualvalue", "actualclosedate"] });
    assert.equal(won.statecode, 1);
    assert.equal(won.statuscode, 3);
    assert.equal(won.actualvalue, 9999.5);
    assert.match(won.actualclosedate, /^\d{4}-\d{2}-\d{2}$/);
    const readOnly = await thrown(() => api.update({ collection: "opportunities", key: deal.opportunityid, data: { name: "Renamed" } }));
    assert.equal(readOnly.status, 400);
    assert.equal(readOnly.code, "0x80040203");
    const patchClose = await thrown(() => api.update({ collection: "opportunities", key: results[2].opportunityid, data: { statecode: 2 } }));
    assert.equal(patchClose.status, 400, "closing takes the actions");
    await api.callAction({ actionName: "LoseOpportunity", action: closeBy(4, results[2].opportunityid) });
    const lost = await api.retrieve({ collection: "opportunities", key: results[2].opportunityid, select: ["statecode", "statuscode"] });
    assert.deepEqual([lost.statecode, lost.statuscode], [2, 4]);

    const attrs = await api.retrieveAttributes({ entityKey: "LogicalName='opportunity'", select: ["LogicalName", "AttributeType", "RequiredLevel"] });
    const by = (name) => attrs.value.find((a) => a.LogicalName === name);
    assert.equal(by("customerid").AttributeType, "Customer");
    assert.equal(by("statecode").AttributeType, "State");
    assert.equal(by("name").RequiredLevel.Value, "ApplicationRequired");
  });

  test("annotations: notes on a deal with their original time; notetext over 100,000 is refused", async () => {
    const deal = await api.create({ collection: "opportunities", data: { name: "With notes" } });
    const note = await api.upsert({
      collection: "annotations",
      key: `${KEY}='sdk-note-1'`,
      data: {
        subject: "Kick-off",
        notetext: "<p>Réunion <b>ok</b></p>",
        overriddencreatedon: "2020-02-29T12:00:00Z",
        "objectid_opportunity@odata.bind": `/opportunities(${deal})`,
      },
      returnRepresentation: true,
      select: ["notetext", "createdon", "_objectid_value", "objecttypecode", "_ownerid_value"],
    });
    assert.equal(note.notetext, "<p>Réunion <b>ok</b></p>");
    // The client turns date-time strings into Dates.
    assert.equal(new Date(note.createdon).toISOString(), "2020-02-29T12:00:00.000Z", "the note's own time");
    assert.equal(note._objectid_value, deal);
    assert.equal(note.objecttypecode, "opportunity");
    const notes = await api.retrieveMultiple({ collection: "annotations", select: ["subject"], filter: `_objectid_value eq ${deal}` });
    assert.equal(notes.value.length, 1);
    const long = await thrown(() => api.create({ collection: "annotations", data: { notetext: "n".repeat(100_001) } }));
    assert.equal(long.status, 400);
    assert.equal(long.code, "0x80044331");
    assert.match(long.message, /maximum allowed length of '100000'/);
    await api.deleteRecord({ collection: "opportunities", key: deal });
    const gone = await api.retrieveMultiple({ collection: "annotations", select: ["subject"], filter: `_objectid_value eq ${deal}` });
    assert.equal(gone.value.length, 0, "notes are deleted with their parent");
  });

  test("a bad token is the client's error with 401 and WWW-Authenticate", async () => {
    const bad = client(sb, async () => "not-a-token");
    const e = await thrown(() => bad.retrieveMultiple({ collection: "contacts", maxPageSize: 1 }));
    assert.equal(e.status, 401);
    assert.match(e.headers["www-authenticate"], /^Bearer authorization_uri=/);
  });
});

describe("dynamics: injected 429s (ferry sandbox --throttle)", () => {
  test("an injected 429 is the client's error with Retry-After and the service-protection code", async () => {
    const sb = await startSandbox("dynamics", { records: 10, flags: ["--throttle", "dynamics=2", "--retry-after", "3"] });
    try {
      const access = await token(sb); // request 1
      const api = client(sb, async () => access);
      const e = await thrown(() => api.retrieveMultiple({ collection: "contacts", maxPageSize: 5 })); // 2
      assert.equal(e.status, 429);
      assert.equal(e.code, "0x80072322");
      assert.match(e.message, /^Number of requests exceeded the limit of 6000 over time window of 300 seconds/);
      assert.equal(e.headers["retry-after"], "3");
      const ok = await api.retrieveMultiple({ collection: "contacts", maxPageSize: 5 }); // 3
      assert.equal(ok.value.length, 5);
    } finally {
      await sb.stop();
    }
  });
});
