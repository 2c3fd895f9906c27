// jsforce (the community's Salesforce client, used by Salesforce's own CLI) against `ferry sandbox`'s
// Salesforce emulator: the OAuth client-credentials flow, SOQL paging, sObject Collections upsert
// and the errors ferry's Salesforce connector relies on; users, opportunity stages, opportunities,
// contact roles and classic notes; jsforce's Bulk API 2.0 client (`conn.bulk2`) loading and querying.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import jsforce from "jsforce";
import { startSandbox, thrown } from "./lib/sandbox.mjs";

const EXT = "Ferry_Source_Id__c";
const VERSION = "62.0";

async function connect(sb, secret = sb.env.SF_CLIENT_SECRET) {
  const conn = new jsforce.Connection({
    oauth2: { loginUrl: sb.url, clientId: sb.env.SF_CLIENT_ID, clientSecret: secret },
    version: VERSION,
  });
  await conn.authorize({ grant_type: "client_credentials" });
  return conn;
}

describe("salesforce: jsforce", () => {
  let sb;
  let conn;
  before(async () => {
    sb = await startSandbox("salesforce", { records: 500 });
    conn = await connect(sb);
  });
  after(() => sb?.stop());

  test("client credentials give a session on the instance_url the token response names", async () => {
    assert.equal(conn.instanceUrl, sb.url);
    assert.ok(conn.accessToken);
    assert.match(conn.userInfo.organizationId, /^00D/);
    const limits = await conn.limits();
    assert.ok(limits.DailyApiRequests.Max > 0);
    // jsforce reads Sforce-Limit-Info (api-usage=N/M) from every REST answer.
    assert.ok(conn.limitInfo.apiUsage.used > 0);
    assert.equal(conn.limitInfo.apiUsage.limit, limits.DailyApiRequests.Max);
  });

  test("SOQL pages through nextRecordsUrl to the end, as many as were seeded", async () => {
    const headers = { "Sforce-Query-Options": "batchSize=200" };
    for (const [object, expected] of [
      ["Contact", sb.seeded.contacts],
      ["Account", sb.seeded.companies],
    ]) {
      const first = await conn.query(`SELECT Id FROM ${object} ORDER BY Id`, { headers });
      assert.equal(first.totalSize, expected);
      assert.equal(first.done, expected <= 200);
      const ids = new Set(first.records.map((r) => r.Id));
      let page = first;
      let pages = 1;
      while (!page.done) {
        page = await conn.queryMore(page.nextRecordsUrl, { headers });
        pages += 1;
        for (const r of page.records) ids.add(r.Id);
      }
      assert.equal(ids.size, expected);
      if (expected > 200) assert.ok(pages > 1);
      for (const id of ids) assert.match(id, /^[0-9A-Za-z]{18}$/);
    }
    // jsforce's own autoFetch walks the same locators.
    const all = await conn.query("SELECT Id, AccountId FROM Contact ORDER BY Id").run({ autoFetch: true, maxFetch: 1e6, headers });
    assert.equal(all.records.length, sb.seeded.contacts);
    const count = await conn.query("SELECT COUNT() FROM Contact");
    assert.equal(count.totalSize, sb.seeded.contacts);
  });

  test("describe shows the external-id field ferry keys its upserts on", async () => {
    const d = await conn.sobject("Contact").describe();
    const ext = d.fields.find((f) => f.name === EXT);
    assert.ok(ext, `${EXT} is described`);
    assert.equal(ext.externalId, true);
    assert.equal(ext.unique, true);
    assert.equal(d.fields.find((f) => f.name === "LastName").nillable, false);
  });

  test("sObject Collections upsert by external id: per-record results, then read back by external id", async () => {
    const accounts = await conn.sobject("Account").upsert([{ [EXT]: "sdk-acc-1", Name: "Sdk Co" }], EXT, { allOrNone: false });
    assert.equal(accounts.length, 1);
    assert.equal(accounts[0].success, true);
    assert.equal(accounts[0].created, true);

    const records = [
      { [EXT]: "sdk-1", LastName: "Lovelace", FirstName: "Ada", Email: "ada@sdk.example.com", HasOptedOutOfEmail: true, Account: { [EXT]: "sdk-acc-1" } },
      { [EXT]: "sdk-2", Email: "not an email" },
      { [EXT]: "sdk-3", LastName: "Hopper", Email: "grace@sdk.example.com", HasOptedOutOfEmail: false },
    ];
    const res = await conn.sobject("Contact").upsert(records, EXT, { allOrNone: false });
    assert.equal(res.length, 3);
    assert.equal(res[0].success, true);
    assert.equal(res[0].created, true);
    assert.match(res[0].id, /^003/);
    assert.equal(res[1].success, false);
    const codes = res[1].errors.map((e) => e.statusCode).sort();
    assert.deepEqual(codes, ["INVALID_EMAIL_ADDRESS", "REQUIRED_FIELD_MISSING"]);
    assert.ok(res[1].errors.every((e) => Array.isArray(e.fields)));
    assert.equal(res[2].success, true);

    // The same external id again updates (created: false), never duplicates.
    const again = await conn.sobject("Contact").upsert([{ [EXT]: "sdk-1", LastName: "Lovelace", Title: "Analyst" }], EXT, { allOrNone: false });
    assert.equal(again[0].created, false);
    assert.equal(again[0].id, res[0].id);

    // allOrNone: the valid record is rolled back with Salesforce's code.
    const rolled = await conn.sobject("Contact").upsert(
      [{ [EXT]: "sdk-4", LastName: "Ok" }, { [EXT]: "sdk-5", Email: "bad" }],
      EXT,
      { allOrNone: true },
    );
    assert.equal(rolled[0].success, false);
    assert.equal(rolled[0].errors[0].statusCode, "ALL_OR_NONE_OPERATION_ROLLED_BACK");

    // Read back by external id (SOQL, as the connector does) and by record id.
    const back = await conn
      .sobject("Contact")
      .find({ [EXT]: { $in: ["sdk-1", "sdk-3", "sdk-4"] } }, ["Id", EXT, "Title", "HasOptedOutOfEmail", "Account." + EXT])
      .sort({ [EXT]: 1 });
    assert.deepEqual(back.map((r) => r[EXT]), ["sdk-1", "sdk-3"]);
    assert.equal(back[0].Title, "Analyst");
    assert.equal(back[0].HasOptedOutOfEmail, true);
    assert.equal(back[0].Account[EXT], "sdk-acc-1");
    assert.equal(back[1].HasOptedOutOfEmail, false);
    const byId = await conn.query(`SELECT Id, ${EXT} FROM Contact WHERE Id = '${res[0].id}'`);
    assert.equal(byId.records[0][EXT], "sdk-1");
  });

  test("consent: seeded opt-outs come back as HasOptedOutOfEmail booleans", async () => {
    const all = await conn.query("SELECT Id, HasOptedOutOfEmail FROM Contact").run({ autoFetch: true, maxFetch: 1e6 });
    assert.ok(all.records.every((r) => typeof r.HasOptedOutOfEmail === "boolean"));
    assert.ok(all.records.some((r) => r.HasOptedOutOfEmail === true));
  });

  test("a bad session is jsforce's INVALID_SESSION_ID error; bad client secret an OAuth error", async () => {
    const bad = new jsforce.Connection({ instanceUrl: sb.url, accessToken: "00Dbad!token", version: VERSION });
    const e = await thrown(() => bad.query("SELECT Id FROM Contact LIMIT 1"));
    assert.equal(e.name, "INVALID_SESSION_ID");
    assert.equal(e.errorCode, "INVALID_SESSION_ID");
    const o = await thrown(() => connect(sb, "wrong-secret"));
    assert.match(o.name, /^invalid_client/);
  });

  test("whole-request errors are jsforce errors carrying Salesforce's errorCode", async () => {
    const unknownField = await thrown(() => conn.sobject("Contact").upsert([{ [EXT]: "sdk-9", LastName: "X", NoSuchField__c: 1 }], EXT));
    assert.equal(unknownField.errorCode, "INVALID_FIELD");
    const soql = await thrown(() => conn.query("SELECT FROM Contact"));
    assert.equal(soql.errorCode, "MALFORMED_QUERY");
    const tooMany = await thrown(() =>
      conn.sobject("Contact").upsert(Array.from({ length: 201 }, (_, i) => ({ [EXT]: `many-${i}`, LastName: "M" })), EXT),
    );
    assert.equal(tooMany.errorCode, "EXCEEDED_ID_LIMIT");
  });
});

describe("salesforce: jsforce, field metadata and custom fields", () => {
  let sb;
  let conn;
  before(async () => {
    sb = await startSandbox("salesforce", { records: 100 });
    conn = await connect(sb);
  });
  after(() => sb?.stop());

  test("describe lists the seeded custom fields with their types and Tier's picklist values", async () => {
    const account = await conn.sobject("Account").describe();
    const field = (d, name) => d.fields.find((f) => f.name === name);
    assert.equal(field(account, "Region__c").type, "string");
    assert.equal(field(account, "Region__c").custom, true);
    assert.equal(field(account, "Seats__c").type, "double");
    assert.equal(field(account, "Seats__c").scale, 0);
    const tier = field(account, "Tier__c");
    assert.equal(tier.type, "picklist");
    assert.equal(tier.restrictedPicklist, true);
    assert.deepEqual(tier.picklistValues.map((v) => v.value), ["Gold", "Silver", "Bronze"]);
    const industry = field(account, "Industry");
    assert.equal(industry.custom, false);
    assert.ok(industry.picklistValues.some((v) => v.label === "Technology"));
    const contact = await conn.sobject("Contact").describe();
    assert.equal(field(contact, "Favourite_Colour__c").type, "string");
    assert.equal(field(contact, "Loyalty_Points__c").type, "double");
  });

  test("seeded custom values come back when selected; a restricted picklist refuses other values", async () => {
    const all = await conn.query("SELECT Id, Region__c, Seats__c, Tier__c FROM Account").run({ autoFetch: true, maxFetch: 1e6 });
    assert.ok(all.records.some((r) => typeof r.Seats__c === "number"));
    assert.ok(all.records.every((r) => r.Tier__c === null || ["Gold", "Silver", "Bronze"].includes(r.Tier__c)));
    const res = await conn.sobject("Account").upsert(
      [
        { [EXT]: "cf-1", Name: "Custom Co", Region__c: "EMEA", Seats__c: 12, Tier__c: "Gold" },
        { [EXT]: "cf-2", Name: "Other Co", Tier__c: "Platinum" },
      ],
      EXT,
      { allOrNone: false },
    );
    assert.equal(res[0].success, true);
    assert.equal(res[1].success, false);
    assert.equal(res[1].errors[0].statusCode, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    const back = await conn.sobject("Account").find({ [EXT]: "cf-1" }, ["Region__c", "Seats__c", "Tier__c"]);
    assert.deepEqual([back[0].Region__c, back[0].Seats__c, back[0].Tier__c], ["EMEA", 12, "Gold"]);
  });

  test("Tooling API creates a field; FieldPermissions on the profile's permission set make it usable", async () => {
    const created = await conn.tooling.sobject("CustomField").create({
      FullName: "Contact.Shoe_Size__c",
      Metadata: { type: "Number", label: "Shoe Size", precision: 4, scale: 1 },
    });
    assert.equal(created.success, true);
    assert.match(created.id, /^00N/);
    let d = await conn.sobject("Contact").describe();
    assert.equal(d.fields.find((f) => f.name === "Shoe_Size__c"), undefined, "invisible until granted");
    const hidden = await thrown(() => conn.query("SELECT Shoe_Size__c FROM Contact"));
    assert.equal(hidden.errorCode, "INVALID_FIELD");

    const user = await conn.query(`SELECT ProfileId FROM User WHERE Id = '${conn.userInfo.id}'`);
    const profile = user.records[0].ProfileId;
    const sets = await conn.query(`SELECT Id FROM PermissionSet WHERE ProfileId = '${profile}'`);
    assert.equal(sets.totalSize, 1);
    const grant = await conn.sobject("FieldPermissions").create({
      ParentId: sets.records[0].Id,
      SobjectType: "Contact",
      Field: "Contact.Shoe_Size__c",
      PermissionsRead: true,
      PermissionsEdit: true,
    });
    assert.equal(grant.success, true);
    d = await conn.sobject("Contact").describe();
    const shoe = d.fields.find((f) => f.name === "Shoe_Size__c");
    assert.equal(shoe.type, "double");
    assert.equal(shoe.updateable, true);
    const res = await conn.sobject("Contact").upsert([{ [EXT]: "cf-c1", LastName: "Shoe", Shoe_Size__c: 8.5 }], EXT);
    assert.equal(res[0].success, true);
    const back = await conn.sobject("Contact").find({ [EXT]: "cf-c1" }, ["Shoe_Size__c"]);
    assert.equal(back[0].Shoe_Size__c, 8.5);

    const duplicate = await thrown(() =>
      conn.tooling.sobject("CustomField").create({ FullName: "Contact.Shoe_Size__c", Metadata: { type: "Text", label: "Shoe Size", length: 10 } }),
    );
    assert.equal(duplicate.errorCode, "DUPLICATE_DEVELOPER_NAME");
  });
});

describe("salesforce: jsforce, deals, stages, owners and notes", () => {
  let sb;
  let conn;
  before(async () => {
    sb = await startSandbox("salesforce", { records: 500 });
    conn = await connect(sb);
  });
  after(() => sb?.stop());

  const userId = async (email) => (await conn.query(`SELECT Id FROM User WHERE Email = '${email}'`)).records[0].Id;

  test("users: SOQL on User lists the org's users, the deactivated one with IsActive false", async () => {
    const users = await conn.query("SELECT Id, Email, Name, Username, IsActive FROM User");
    assert.ok(users.totalSize >= 8);
    for (const u of users.records) assert.match(u.Id, /^005[0-9A-Za-z]{15}$/);
    const me = users.records.find((u) => u.Id === conn.userInfo.id);
    assert.ok(me, "the token's user is a User");
    assert.equal(me.IsActive, true);
    const inactive = await conn.sobject("User").find({ IsActive: false }, ["Email"]);
    assert.deepEqual(inactive.map((u) => u.Email), ["goro.tanaka@ferry-demo.example"]);
    // Salesforce keeps addresses as typed: this org holds Ana's in capitals.
    assert.ok(users.records.some((u) => u.Email === "ANA.GARCIA@FERRY-DEMO.EXAMPLE"));
  });

  test("stages: OpportunityStage rows in order, and the same labels in StageName's picklist", async () => {
    const stages = await conn
      .sobject("OpportunityStage")
      .find({ IsActive: true }, ["MasterLabel", "ApiName", "IsClosed", "IsWon", "SortOrder", "DefaultProbability"])
      .sort({ SortOrder: 1 });
    const labels = stages.map((s) => s.MasterLabel);
    assert.ok(labels.includes("Prospecting") && labels.includes("Closed Won") && labels.includes("Closed Lost"));
    const won = stages.find((s) => s.MasterLabel === "Closed Won");
    assert.deepEqual([won.IsClosed, won.IsWon, won.DefaultProbability], [true, true, 100]);
    const lost = stages.find((s) => s.MasterLabel === "Closed Lost");
    assert.deepEqual([lost.IsClosed, lost.IsWon], [true, false]);
    const d = await conn.sobject("Opportunity").describe();
    const stageName = d.fields.find((f) => f.name === "StageName");
    assert.equal(stageName.type, "picklist");
    assert.deepEqual(stageName.picklistValues.map((v) => v.value), labels);
    assert.equal(d.fields.find((f) => f.name === "CloseDate").nillable, false);
    assert.equal(d.fields.find((f) => f.name === "IsWon").createable, false);
    assert.equal(d.fields.find((f) => f.name === EXT).externalId, true);
    const refused = await conn.sobject("OpportunityStage").create([{ MasterLabel: "Mine" }], { allOrNone: false });
    assert.equal(refused[0].errors[0].statusCode, "INVALID_TYPE_FOR_OPERATION");
  });

  test("seeded opportunities page through nextRecordsUrl with their stages, owners and accounts", async () => {
    const headers = { "Sforce-Query-Options": "batchSize=200" };
    const count = await conn.query("SELECT COUNT() FROM Opportunity");
    assert.ok(count.totalSize > 0);
    const all = await conn
      .query("SELECT Id, Name, StageName, IsClosed, IsWon, Amount, CloseDate, OwnerId, Owner.Email, AccountId FROM Opportunity ORDER BY Id")
      .run({ autoFetch: true, maxFetch: 1e6, headers });
    assert.equal(all.records.length, count.totalSize);
    assert.ok(all.records.some((o) => o.IsWon === true));
    assert.ok(all.records.some((o) => o.IsClosed === true && o.IsWon === false));
    assert.ok(all.records.every((o) => /^\d{4}-\d{2}-\d{2}$/.test(o.CloseDate)));
    assert.ok(all.records.some((o) => o.Owner && o.Owner.Email !== "integration@sandbox.example"));
    const notes = await conn.query("SELECT Id, Title, Body, ParentId FROM Note", { headers });
    assert.ok(notes.totalSize > 200, "more notes than one page");
    assert.equal(notes.done, false);
    const more = await conn.queryMore(notes.nextRecordsUrl, { headers });
    assert.ok(more.records.length > 0);
  });

  test("opportunities: upsert by external id, stage rules, derived IsClosed/IsWon, read by id, update", async () => {
    await conn.sobject("Account").upsert([{ [EXT]: "deal-acc", Name: "Deal Co" }], EXT);
    const ben = await userId("ben.okafor@ferry-demo.example");
    const res = await conn.sobject("Opportunity").upsert(
      [
        { [EXT]: "sdk-d1", Name: "Big deal", StageName: "Prospecting", CloseDate: "2027-06-30", Amount: 5000, CurrencyIsoCode: "EUR", OwnerId: ben, Account: { [EXT]: "deal-acc" } },
        { [EXT]: "sdk-d2", Name: "No date", StageName: "Prospecting" },
        { [EXT]: "sdk-d3", Name: "Odd stage", StageName: "Appointment Scheduled", CloseDate: "2027-01-01" },
      ],
      EXT,
      { allOrNone: false },
    );
    assert.equal(res[0].success, true);
    assert.equal(res[0].created, true);
    assert.match(res[0].id, /^006/);
    assert.equal(res[1].errors[0].statusCode, "REQUIRED_FIELD_MISSING");
    assert.equal(res[2].errors[0].statusCode, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    let deal = await conn.sobject("Opportunity").retrieve(res[0].id);
    assert.deepEqual([deal.StageName, deal.IsClosed, deal.IsWon, deal.OwnerId, deal.CurrencyIsoCode], ["Prospecting", false, false, ben, "EUR"]);
    const updated = await conn.sobject("Opportunity").update([{ Id: res[0].id, StageName: "Closed Won" }], { allOrNone: false });
    assert.equal(updated[0].success, true);
    deal = await conn.sobject("Opportunity").retrieve(res[0].id);
    assert.deepEqual([deal.IsClosed, deal.IsWon, deal.Probability], [true, true, 100]);
    const e = await thrown(() => conn.sobject("Opportunity").retrieve("006000000000000AAA"));
    assert.equal(e.errorCode, "NOT_FOUND");
  });

  test("owners: an inactive or unknown OwnerId is refused per record", async () => {
    const goro = await userId("goro.tanaka@ferry-demo.example");
    const res = await conn.sobject("Contact").upsert(
      [
        { [EXT]: "own-1", LastName: "Inactive", OwnerId: goro },
        { [EXT]: "own-2", LastName: "Unknown", OwnerId: "0058d0000000999AAA" },
        { [EXT]: "own-3", LastName: "Default" },
      ],
      EXT,
      { allOrNone: false },
    );
    assert.equal(res[0].errors[0].statusCode, "INACTIVE_OWNER_OR_USER");
    assert.equal(res[1].errors[0].statusCode, "INVALID_CROSS_REFERENCE_KEY");
    const back = await conn.sobject("Contact").find({ [EXT]: "own-3" }, ["OwnerId"]);
    assert.equal(back[0].OwnerId, conn.userInfo.id, "the calling user owns what it creates");
  });

  test("contact roles: every contact of a deal, one primary, read back WHERE OpportunityId IN (…)", async () => {
    const deals = await conn.sobject("Opportunity").upsert(
      [1, 2].map((n) => ({ [EXT]: `roles-${n}`, Name: `Roles ${n}`, StageName: "Qualification", CloseDate: "2027-02-01" })),
      EXT,
    );
    const contacts = await conn.sobject("Contact").upsert(
      [1, 2, 3, 4, 5].map((n) => ({ [EXT]: `role-c${n}`, LastName: `Contact ${n}` })),
      EXT,
    );
    const roles = contacts.map((c, i) => ({ OpportunityId: deals[0].id, ContactId: c.id, Role: "Evaluator", IsPrimary: i === 0 }));
    roles.push({ OpportunityId: deals[1].id, ContactId: contacts[0].id, IsPrimary: true });
    const created = await conn.sobject("OpportunityContactRole").create(roles, { allOrNone: false });
    assert.ok(created.every((r) => r.success), JSON.stringify(created));
    assert.ok(created.every((r) => /^00K/.test(r.id)));
    await conn.sobject("OpportunityContactRole").update([{ Id: created[3].id, IsPrimary: true }]);
    const back = await conn
      .sobject("OpportunityContactRole")
      .find({ OpportunityId: { $in: [deals[0].id, deals[1].id] } }, ["OpportunityId", "ContactId", "IsPrimary", "Role", "Contact." + EXT]);
    assert.equal(back.length, 6);
    const first = back.filter((r) => r.OpportunityId === deals[0].id);
    assert.equal(first.length, 5, "five contacts on one deal");
    assert.deepEqual(first.filter((r) => r.IsPrimary).map((r) => r.Contact[EXT]), ["role-c4"]);
    const moved = await conn.sobject("OpportunityContactRole").update([{ Id: created[0].id, OpportunityId: deals[1].id }], { allOrNone: false });
    assert.equal(moved[0].errors[0].statusCode, "INVALID_FIELD_FOR_INSERT_UPDATE");

    // Deleting a deal (sObject Collections DELETE) deletes its contact roles with it.
    const gone = await conn.sobject("Opportunity").destroy([deals[0].id], { allOrNone: false });
    assert.equal(gone[0].success, true);
    const left = await conn.sobject("OpportunityContactRole").find({ OpportunityId: { $in: [deals[0].id, deals[1].id] } }, ["Id"]);
    assert.equal(left.length, 1);
    const again = await conn.sobject("Opportunity").destroy([deals[0].id], { allOrNone: false });
    assert.equal(again[0].errors[0].statusCode, "ENTITY_IS_DELETED");
  });

  test("notes: one parent of any kind, bodies over 32,000 characters refused, never truncated", async () => {
    const [acc] = await conn.sobject("Account").upsert([{ [EXT]: "note-acc", Name: "Noted Co" }], EXT);
    const [deal] = await conn.sobject("Opportunity").upsert([{ [EXT]: "note-deal", Name: "Noted", StageName: "Prospecting", CloseDate: "2027-02-01" }], EXT);
    const res = await conn.sobject("Note").create(
      [
        { ParentId: acc.id, Title: "Visite", Body: "Rappel : envoyer le devis révisé\n見積書を送付しました", CreatedDate: "2024-03-01T09:00:00.000+0000" },
        { ParentId: deal.id, Title: "Too long", Body: "x".repeat(32_001) },
        { Title: "No parent", Body: "x" },
      ],
      { allOrNone: false },
    );
    assert.equal(res[0].success, true);
    assert.match(res[0].id, /^002/);
    assert.equal(res[1].errors[0].statusCode, "STRING_TOO_LONG");
    assert.equal(res[2].errors[0].statusCode, "REQUIRED_FIELD_MISSING");
    const back = await conn.sobject("Note").find({ ParentId: { $in: [acc.id, deal.id] } }, ["Title", "Body", "ParentId", "OwnerId", "CreatedDate"]);
    assert.equal(back.length, 1);
    assert.equal(back[0].Body, "Rappel : envoyer le devis révisé\n見積書を送付しました");
    assert.equal(back[0].CreatedDate, "2024-03-01T09:00:00.000+0000");
    assert.equal(back[0].OwnerId, conn.userInfo.id);
    const d = await conn.sobject("Note").describe();
    const parent = d.fields.find((f) => f.name === "ParentId");
    assert.deepEqual(parent.referenceTo, ["Account", "Contact", "Opportunity"]);
    assert.equal(d.fields.find((f) => f.name === "Body").length, 32000);
  });
});

describe("salesforce: injected 429s (ferry sandbox --throttle)", () => {
  test("jsforce retries a throttled GET; a throttled upsert surfaces REQUEST_LIMIT_EXCEEDED", async () => {
    const sb = await startSandbox("salesforce", { records: 20, flags: ["--throttle", "salesforce=2", "--retry-after", "1"] });
    try {
      const conn = await connect(sb); // request 1
      const q = await conn.query("SELECT Id FROM Contact"); // 2: 429, retried as 3
      assert.equal(q.totalSize, sb.seeded.contacts);
      // 4: 429. jsforce does not retry PATCH, so the emulator's body reaches the caller.
      const e = await thrown(() => conn.sobject("Contact").upsert([{ [EXT]: "t-1", LastName: "T" }], EXT));
      assert.equal(e.errorCode, "REQUEST_LIMIT_EXCEEDED");
      assert.equal(e.name, "REQUEST_LIMIT_EXCEEDED");
    } finally {
      await sb.stop();
    }
  });
});

/** The records of a jsforce record stream. */
function collect(stream) {
  return new Promise((resolve, reject) => {
    const out = [];
    stream.on("record", (r) => out.push(r));
    stream.on("end", () => resolve(out));
    stream.on("error", reject);
  });
}

describe("salesforce: jsforce bulk2 (Bulk API 2.0)", () => {
  let sb;
  let conn;
  before(async () => {
    sb = await startSandbox("salesforce", { records: 60 });
    conn = await connect(sb);
    // The emulator moves a job on at each poll: no need to wait a second between them.
    conn.bulk2.pollInterval = 20;
    conn.bulk2.pollTimeout = 10_000;
  });
  after(() => sb?.stop());

  test("insert: each record booked successful or failed, with Salesforce's sf__ columns", async () => {
    const input = [
      { [EXT]: "bulk-1", FirstName: "Lorelai", LastName: "Gilmore", Email: "lorelai@example.org" },
      // jsforce writes null as #N/A: the required LastName is cleared, so the row fails alone.
      { [EXT]: "bulk-2", FirstName: "Rory", LastName: null, Email: "rory@example.org" },
      { [EXT]: "bulk-3", FirstName: "Luke, \"the\" diner", LastName: "Danes", Email: "luke@example.org" },
    ];
    const res = await conn.bulk2.loadAndWaitForResults({ object: "Contact", operation: "insert", input });
    assert.equal(res.successfulResults.length, 2);
    assert.equal(res.failedResults.length, 1);
    assert.equal(res.unprocessedRecords.length, 0);
    for (const r of res.successfulResults) {
      assert.match(r.sf__Id, /^003[0-9A-Za-z]{15}$/);
      assert.equal(r.sf__Created, "true");
    }
    const luke = res.successfulResults.find((r) => r[EXT] === "bulk-3");
    assert.equal(luke.FirstName, 'Luke, "the" diner');
    const failed = res.failedResults[0];
    assert.equal(failed[EXT], "bulk-2");
    assert.equal(failed.sf__Error, "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --");
    const back = await conn.sobject("Contact").retrieve(luke.sf__Id);
    assert.equal(back.FirstName, 'Luke, "the" diner');
    assert.equal(back[EXT], "bulk-3");
  });

  test("upsert by external id: existing records updated, new ones created, a bad row refused alone", async () => {
    const job = conn.bulk2.createJob({ object: "Contact", operation: "upsert", externalIdFieldName: EXT });
    const states = [];
    job.on("inProgress", (info) => states.push(info.state));
    await job.open();
    assert.equal(job.getInfo().state, "Open");
    await job.uploadData([
      { [EXT]: "bulk-1", Title: "Innkeeper", Email: "lorelai@example.org" },
      { [EXT]: "bulk-4", Title: "Chef", Email: "sookie@example.org" },
      { [EXT]: "bulk-5", Title: "Troubadour", Email: "not-an-email" },
    ].map((r) => ({ ...r, LastName: r[EXT] === "bulk-1" ? "Gilmore" : "St. James" })));
    await job.close();
    await job.poll();
    // Closed, the job is UploadComplete; the first poll finds it InProgress, the next complete.
    assert.deepEqual(states, ["InProgress"]);
    assert.equal(job.getInfo().state, "JobComplete");
    assert.equal(job.getInfo().numberRecordsProcessed, 3);
    assert.equal(job.getInfo().numberRecordsFailed, 1);
    const res = await job.getAllResults();
    const created = Object.fromEntries(res.successfulResults.map((r) => [r[EXT], r.sf__Created]));
    assert.deepEqual(created, { "bulk-1": "false", "bulk-4": "true" });
    assert.match(res.failedResults[0].sf__Error, /^INVALID_EMAIL_ADDRESS:/);
    const q = await conn.query(`SELECT Title FROM Contact WHERE ${EXT} = 'bulk-1'`);
    assert.equal(q.records[0].Title, "Innkeeper");
    await job.delete();
    const gone = await thrown(() => job.check());
    assert.equal(gone.errorCode, "NOT_FOUND");
  });

  test("bulk query: every seeded contact through the results endpoint, columns in SELECT order", async () => {
    const stream = await conn.bulk2.query(`SELECT Id, ${EXT}, LastName, Account.Name FROM Contact`);
    const records = await collect(stream);
    assert.equal(records.length, sb.seeded.contacts + 3);
    assert.deepEqual(Object.keys(records[0]), ["Id", EXT, "LastName", "Account.Name"]);
    assert.ok(records.every((r) => /^003/.test(r.Id)));
    const ours = records.filter((r) => r[EXT].startsWith("bulk-")).map((r) => r[EXT]).sort();
    assert.deepEqual(ours, ["bulk-1", "bulk-3", "bulk-4"]);
  });
});

describe("salesforce: jsforce bulk2 under faults (ferry sandbox --throttle, --faults)", () => {
  test("polls under 429s: jsforce retries the throttled job-info and results GETs, which are not API calls", async () => {
    const sb = await startSandbox("salesforce", { records: 10, flags: ["--throttle", "salesforce=5"] });
    try {
      const conn = await connect(sb); // request 1
      conn.bulk2.pollInterval = 20;
      // 2 create, 3 upload, 4 close, 5 first poll: 429, retried as 6 (InProgress), 7 JobComplete,
      // 8 to 10 the three result sets, one of them throttled and retried as 11.
      const res = await conn.bulk2.loadAndWaitForResults({
        object: "Contact",
        operation: "insert",
        input: [{ [EXT]: "poll-1", LastName: "Poll" }, { [EXT]: "poll-2", LastName: "Polled" }],
      });
      assert.equal(res.successfulResults.length, 2);
      assert.equal(res.failedResults.length, 0);
      const limits = await conn.limits(); // 12
      assert.equal(limits.DailyApiRequests.Max - limits.DailyApiRequests.Remaining, 9);
    } finally {
      await sb.stop();
    }
  });

  test("a job that fails part-way: jsforce reports the errorMessage; the rest are unprocessed records", async () => {
    const sb = await startSandbox("salesforce", { records: 10, flags: ["--faults", "salesforce=bulkcut:100"] });
    try {
      const conn = await connect(sb);
      conn.bulk2.pollInterval = 20;
      const job = conn.bulk2.createJob({ object: "Contact", operation: "insert" });
      await job.open();
      await job.uploadData(Array.from({ length: 6 }, (_, i) => ({ [EXT]: `cut-${i}`, LastName: `Cut${i}` })));
      await job.close();
      const e = await thrown(() => job.poll());
      assert.match(e.message, /^Ingest job failed to complete due to: \S/);
      assert.equal(job.getInfo().state, "Failed");
      const res = await job.getAllResults();
      assert.equal(res.successfulResults.length, 3);
      assert.deepEqual(res.unprocessedRecords.map((r) => r[EXT]), ["cut-3", "cut-4", "cut-5"]);
    } finally {
      await sb.stop();
    }
  });
});
