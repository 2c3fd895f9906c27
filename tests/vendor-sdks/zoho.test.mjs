// Zoho's official Node SDK (@zohocrm/nodejs-sdk-8.0) against `ferry sandbox`'s Zoho emulator:
// the refresh-token grant, list paging with page_token, upsert with per-record results, COQL
// read-back, field metadata (listing fields, creating custom fields), users, layouts and
// pipelines, deals (create, read, update, upsert, delete) with their contact roles, notes, and
// the errors ferry's Zoho connector relies on.
//
// The SDK is a process-wide singleton. It is pointed at the emulator with its own `Environment`
// class (API URL, accounts URL), keeps tokens in the in-memory store below instead of its default
// token file, and writes its field-metadata cache under a temporary `resourcePath` that the test
// removes. Its logger is off (no log file).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as Z from "@zohocrm/nodejs-sdk-8.0";
import { Initializer } from "@zohocrm/nodejs-sdk-8.0/lib/routes/initializer.js";
import { startSandbox } from "./lib/sandbox.mjs";

const SOURCE_ID = "Ferry_Source_Id";

/** A token store that never touches the disk. */
class MemoryStore extends Z.TokenStore.TokenStore {
  tokens = [];
  async findToken(token) {
    return this.tokens.find((t) => t.getClientId() === token.getClientId() && t.getRefreshToken() === token.getRefreshToken()) ?? null;
  }
  async saveToken(token) {
    if (!token.getId()) token.setId(String(this.tokens.length + 1));
    this.tokens = this.tokens.filter((t) => t.getId() !== token.getId()).concat(token);
  }
  async deleteToken(id) {
    this.tokens = this.tokens.filter((t) => t.getId() !== id);
  }
  async getTokens() {
    return this.tokens;
  }
  async deleteTokens() {
    this.tokens = [];
  }
  async findTokenById(id) {
    return this.tokens.find((t) => t.getId() === id) ?? null;
  }
}

/** (Re)initialises the SDK against `url` with `token`. */
async function init(url, token, resourcePath) {
  // The SDK keeps one configuration per user, keyed by the refresh token's tail alone (not by
  // the environment), and every sandbox has the same refresh token: forget the previous
  // sandbox's configuration, or the SDK keeps calling its (stopped) URL.
  Initializer.LOCAL.clear();
  const environment = new Z.Environment(url, `${url}/oauth/v2/token`, url);
  await (await new Z.InitializeBuilder())
    .environment(environment)
    .token(token)
    .store(new MemoryStore())
    .resourcePath(resourcePath)
    .SDKConfig(new Z.SDKConfigBuilder().pickListValidation(false).autoRefreshFields(false).build())
    .logger(new Z.LogBuilder().level(Z.Levels.OFF).build())
    .initialize();
}

function refreshToken(env) {
  return new Z.OAuthBuilder()
    .clientId(env.ZOHO_CLIENT_ID)
    .clientSecret(env.ZOHO_CLIENT_SECRET)
    .refreshToken(env.ZOHO_REFRESH_TOKEN)
    .findUser(false)
    .build();
}

async function listPage(module, fields, { perPage = 200, pageToken } = {}) {
  const params = new Z.ParameterMap();
  await params.add(Z.Record.GetRecordsParam.FIELDS, fields);
  await params.add(Z.Record.GetRecordsParam.PER_PAGE, perPage);
  if (pageToken) await params.add(Z.Record.GetRecordsParam.PAGE_TOKEN, pageToken);
  return new Z.Record.RecordOperations(module).getRecords(params, new Z.HeaderMap());
}

async function coql(query) {
  const body = new Z.Coql.BodyWrapper();
  body.setSelectQuery(query);
  return new Z.Coql.CoqlOperations().getRecords(body);
}

function record(fields) {
  const r = new Z.Record.Record();
  for (const [k, v] of Object.entries(fields)) r.addKeyValue(k, v);
  return r;
}

async function upsert(module, records, duplicateCheck = [SOURCE_ID]) {
  const body = new Z.Record.BodyWrapper();
  body.setData(records);
  body.setDuplicateCheckFields(duplicateCheck);
  body.setTrigger([]);
  return new Z.Record.RecordOperations(module).upsertRecords(body, new Z.HeaderMap());
}

describe("zoho: @zohocrm/nodejs-sdk-8.0", () => {
  let sb;
  let dir;
  before(async () => {
    sb = await startSandbox("zoho", { records: 500 });
    dir = mkdtempSync(join(tmpdir(), "ferry-zoho-sdk-"));
    await init(sb.url, refreshToken(sb.env), dir);
  });
  after(async () => {
    await sb?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the org answers with its id: the connector's account identity", async () => {
    const res = await new Z.Org.OrgOperations().getOrganization();
    assert.equal(res.getStatusCode(), 200);
    const orgs = res.getObject().getOrg();
    assert.equal(orgs.length, 1);
    assert.match(String(orgs[0].getId()), /^\d{19}$/);
    assert.equal(typeof orgs[0].getCompanyName(), "string");
  });

  test("lists Contacts and Accounts through page_token to the end, as many as were seeded", async () => {
    for (const [module, fields, expected] of [
      ["Contacts", "Last_Name,Email,Email_Opt_Out,Account_Name", sb.seeded.contacts],
      ["Accounts", "Account_Name", sb.seeded.companies],
    ]) {
      const ids = new Set();
      let pageToken;
      let pages = 0;
      for (;;) {
        const res = await listPage(module, fields, { perPage: 200, pageToken });
        assert.equal(res.getStatusCode(), 200);
        const wrapper = res.getObject();
        assert.ok(wrapper instanceof Z.Record.ResponseWrapper, `a ResponseWrapper, got ${wrapper?.constructor?.name}`);
        pages += 1;
        for (const r of wrapper.getData()) {
          assert.equal(typeof r.getId(), "bigint");
          ids.add(r.getId());
        }
        const info = wrapper.getInfo();
        assert.equal(info.getPerPage(), 200);
        if (!info.getMoreRecords()) break;
        pageToken = info.getNextPageToken();
        assert.ok(pageToken);
      }
      assert.equal(ids.size, expected);
      if (expected > 200) assert.ok(pages > 1);
    }
    const count = await new Z.Record.RecordOperations("Contacts").recordCount(new Z.ParameterMap());
    assert.equal(count.getStatusCode(), 200);
    assert.equal(Number(count.getObject().getCount()), sb.seeded.contacts);
  });

  test("field metadata shows the unique source-id field (the connector's prepare)", async () => {
    const params = new Z.ParameterMap();
    await params.add(Z.Fields.GetFieldsParam.MODULE, "Contacts");
    const res = await new Z.Fields.FieldsOperations().getFields(params);
    assert.equal(res.getStatusCode(), 200);
    const wrapper = res.getObject();
    assert.ok(wrapper instanceof Z.Fields.ResponseWrapper, wrapper?.constructor?.name);
    const fields = wrapper.getFields();
    const source = fields.find((f) => f.getAPIName() === SOURCE_ID);
    assert.ok(source, `${SOURCE_ID} is listed`);
    assert.ok(source.getUnique() != null, "unique");
    assert.equal(source.getCustomField(), true);
    const lastName = fields.find((f) => f.getAPIName() === "Last_Name");
    assert.equal(lastName.getSystemMandatory(), true);
    assert.equal(fields.find((f) => f.getAPIName() === "Email_Opt_Out").getDataType(), "boolean");
  });

  test("consent: Email_Opt_Out comes back as a boolean, true for the seeded opt-outs", async () => {
    let optedOut = 0;
    let pageToken;
    for (;;) {
      const wrapper = (await listPage("Contacts", "Email_Opt_Out", { pageToken })).getObject();
      for (const r of wrapper.getData()) {
        const v = r.getKeyValue("Email_Opt_Out");
        assert.equal(typeof v, "boolean");
        if (v) optedOut += 1;
      }
      if (!wrapper.getInfo().getMoreRecords()) break;
      pageToken = wrapper.getInfo().getNextPageToken();
    }
    assert.ok(optedOut > 0);
  });

  test("upsert by the source-id field: per-record results, then COQL read-back by source id and by id", async () => {
    const acc = await upsert("Accounts", [record({ Account_Name: "Sdk Co", [SOURCE_ID]: "sdk-acc-1" })]);
    assert.equal(acc.getStatusCode(), 200);
    const accResult = acc.getObject().getData()[0];
    assert.ok(accResult instanceof Z.Record.SuccessResponse);
    const accountId = accResult.getDetails().get("id");

    const account = new Z.Record.Record();
    account.setId(BigInt(accountId));
    const res = await upsert("Contacts", [
      record({ Last_Name: "Lovelace", First_Name: "Ada", Email: "ada@sdk.example.com", Email_Opt_Out: true, Account_Name: account, [SOURCE_ID]: "sdk-1" }),
      record({ Email: "no-last-name@sdk.example.com", [SOURCE_ID]: "sdk-2" }),
      record({ Last_Name: "Hopper", Email: "grace@sdk.example.com", Email_Opt_Out: false, [SOURCE_ID]: "sdk-3" }),
    ]);
    assert.equal(res.getStatusCode(), 207);
    const [ada, broken, grace] = res.getObject().getData();
    assert.ok(ada instanceof Z.Record.SuccessResponse);
    assert.equal(ada.getCode().getValue(), "SUCCESS");
    assert.equal(ada.getAction().getValue(), "insert");
    assert.equal(ada.getStatus().getValue(), "success");
    assert.ok(broken instanceof Z.Record.APIException);
    assert.equal(broken.getCode().getValue(), "MANDATORY_NOT_FOUND");
    assert.equal(broken.getStatus().getValue(), "error");
    assert.equal(broken.getDetails().get("api_name"), "Last_Name");
    assert.ok(grace instanceof Z.Record.SuccessResponse);
    const adaId = ada.getDetails().get("id");

    // The same source id again is an update of the same record.
    const again = await upsert("Contacts", [record({ Last_Name: "Lovelace", Title: "Analyst", [SOURCE_ID]: "sdk-1" })]);
    const update = again.getObject().getData()[0];
    assert.equal(update.getAction().getValue(), "update");
    assert.equal(update.getDuplicateField(), SOURCE_ID);
    assert.equal(String(update.getDetails().get("id")), String(adaId));

    const back = await coql(
      `select ${SOURCE_ID}, Last_Name, Title, Email_Opt_Out, Account_Name.${SOURCE_ID} from Contacts where ${SOURCE_ID} in ('sdk-1', 'sdk-2', 'sdk-3') order by id limit 10`,
    );
    assert.equal(back.getStatusCode(), 200);
    const rows = back.getObject().getData();
    assert.deepEqual(rows.map((r) => r.getKeyValue(SOURCE_ID)).sort(), ["sdk-1", "sdk-3"]);
    const adaRow = rows.find((r) => r.getKeyValue(SOURCE_ID) === "sdk-1");
    assert.equal(adaRow.getKeyValue("Title"), "Analyst");
    assert.equal(adaRow.getKeyValue("Email_Opt_Out"), true);
    assert.equal(rows.find((r) => r.getKeyValue(SOURCE_ID) === "sdk-3").getKeyValue("Email_Opt_Out"), false);
    const byId = await coql(`select ${SOURCE_ID} from Contacts where id = ${adaId}`);
    assert.equal(byId.getObject().getData()[0].getKeyValue(SOURCE_ID), "sdk-1");
    const none = await coql(`select ${SOURCE_ID} from Contacts where ${SOURCE_ID} = 'no-such-id'`);
    assert.equal(none.getStatusCode(), 204);
  });

  test("a batch where every record is refused is a 400 with per-record APIExceptions", async () => {
    const res = await upsert("Contacts", [record({ Email: "not an email", Last_Name: "X", [SOURCE_ID]: "sdk-bad" })]);
    assert.equal(res.getStatusCode(), 400);
    const [item] = res.getObject().getData();
    assert.ok(item instanceof Z.Record.APIException);
    assert.equal(item.getCode().getValue(), "INVALID_DATA");
    assert.equal(item.getDetails().get("api_name"), "Email");
  });

  test("a whole-request error is the SDK's APIException with Zoho's code", async () => {
    const res = await listPage("Contacts", "Last_Name", { perPage: 500 });
    assert.equal(res.getStatusCode(), 400);
    const e = res.getObject();
    assert.ok(e instanceof Z.Record.APIException);
    assert.equal(e.getStatus().getValue(), "error");
    assert.equal(e.getCode().getValue(), "INVALID_DATA");
  });

  async function moduleFields(module) {
    const params = new Z.ParameterMap();
    await params.add(Z.Fields.GetFieldsParam.MODULE, module);
    const res = await new Z.Fields.FieldsOperations().getFields(params);
    assert.equal(res.getStatusCode(), 200);
    return res.getObject().getFields();
  }

  test("field metadata lists the seeded custom fields, picklists with their options", async () => {
    const accounts = await moduleFields("Accounts");
    const byName = (name) => accounts.find((f) => f.getAPIName() === name);
    assert.equal(byName("Region").getDataType(), "text");
    assert.equal(byName("Region").getCustomField(), true);
    assert.equal(byName("Seats").getDataType(), "integer");
    const tier = byName("Tier");
    assert.equal(tier.getDataType(), "picklist");
    assert.deepEqual(
      tier.getPickListValues().map((o) => [o.getActualValue(), o.getDisplayValue()]),
      [["Gold", "Gold"], ["Silver", "Silver"], ["Bronze", "Bronze"]],
    );
    const industry = byName("Industry");
    assert.equal(industry.getCustomField(), false);
    assert.ok(industry.getPickListValues().some((o) => o.getDisplayValue() === "Large Enterprise"));
    const contacts = await moduleFields("Contacts");
    assert.equal(contacts.find((f) => f.getAPIName() === "Loyalty_Points").getDataType(), "integer");
    assert.equal(contacts.find((f) => f.getAPIName() === "Favourite_Colour").getDataType(), "text");
    // Seeded records carry the values, numbers as numbers.
    const rows = (await listPage("Accounts", "Region,Seats,Tier")).getObject().getData();
    assert.ok(rows.some((r) => typeof r.getKeyValue("Seats") === "number"));
    // The SDK reads a picklist's value (from the field metadata it loaded) as a Choice.
    const tiers = rows.map((r) => r.getKeyValue("Tier")).filter((t) => t != null);
    assert.ok(tiers.length > 0);
    for (const t of tiers) assert.ok(["Gold", "Silver", "Bronze"].includes(t.getValue()), JSON.stringify(t));
  });

  test("a custom field created through the SDK is listed and holds values", async () => {
    const body = new Z.Fields.BodyWrapper();
    const plan = new Z.Fields.Fields();
    plan.setFieldLabel("Sdk Plan");
    plan.setDataType("picklist");
    plan.setPickListValues(["Free", "Pro"].map((label) => {
      const o = new Z.Fields.PickListValue();
      o.setDisplayValue(label);
      o.setActualValue(label);
      return o;
    }));
    const score = new Z.Fields.Fields();
    score.setFieldLabel("Sdk Score");
    score.setDataType("integer");
    body.setFields([plan, score]);
    const params = new Z.ParameterMap();
    await params.add(Z.Fields.CreateFieldParam.MODULE, "Contacts");
    const res = await new Z.Fields.FieldsOperations().createField(body, params);
    assert.equal(res.getStatusCode(), 201);
    const wrapper = res.getObject();
    assert.ok(wrapper instanceof Z.Fields.ActionWrapper, wrapper?.constructor?.name);
    const [planResult, scoreResult] = wrapper.getFields();
    assert.ok(planResult instanceof Z.Fields.SuccessResponse);
    assert.equal(planResult.getCode().getValue(), "SUCCESS");
    const planId = planResult.getDetails().get("id");
    assert.ok(planId);
    assert.ok(scoreResult instanceof Z.Fields.SuccessResponse);

    const listed = await moduleFields("Contacts");
    const created = listed.find((f) => f.getAPIName() === "Sdk_Plan");
    assert.ok(created, "Sdk_Plan is listed");
    assert.equal(String(created.getId()), String(planId));
    assert.deepEqual(created.getPickListValues().map((o) => o.getDisplayValue()), ["Free", "Pro"]);
    assert.equal(listed.find((f) => f.getAPIName() === "Sdk_Score").getDataType(), "integer");

    const again = await new Z.Fields.FieldsOperations().createField(body, params);
    assert.equal(again.getStatusCode(), 400);
    const [refused] = again.getObject().getFields();
    assert.ok(refused instanceof Z.Fields.APIException, refused?.constructor?.name);
    assert.equal(refused.getCode().getValue(), "ALREADY_USED");

    const written = await upsert("Contacts", [record({ Last_Name: "Field", Sdk_Score: 7, [SOURCE_ID]: "sdk-field-1" })]);
    assert.equal(written.getStatusCode(), 200);
    const back = await coql(`select Sdk_Score, ${SOURCE_ID} from Contacts where ${SOURCE_ID} = 'sdk-field-1'`);
    assert.equal(Number(back.getObject().getData()[0].getKeyValue("Sdk_Score")), 7);
  });

  async function moduleCount(module) {
    const res = await new Z.Record.RecordOperations(module).recordCount(new Z.ParameterMap());
    assert.equal(res.getStatusCode(), 200);
    return Number(res.getObject().getCount());
  }

  async function users(type, perPage) {
    const params = new Z.ParameterMap();
    if (type) await params.add(Z.Users.GetUsersParam.TYPE, type);
    if (perPage) await params.add(Z.Users.GetUsersParam.PER_PAGE, perPage);
    return new Z.Users.UsersOperations().getUsers(params, new Z.HeaderMap());
  }

  test("users: the org's users by type, with their status; Owner points at them", async () => {
    const res = await users("AllUsers");
    assert.equal(res.getStatusCode(), 200);
    const wrapper = res.getObject();
    assert.ok(wrapper instanceof Z.Users.ResponseWrapper, wrapper?.constructor?.name);
    const all = wrapper.getUsers();
    const emails = all.map((u) => u.getEmail());
    assert.ok(emails.includes("ana.garcia@ferry-demo.example"));
    assert.ok(!emails.includes("farah.haddad@ferry-demo.example"), "Farah is not in this org");
    for (const u of all) {
      assert.equal(typeof u.getId(), "bigint");
      assert.equal(u.getStatus(), "active");
      assert.equal(typeof u.getFullName(), "string");
    }
    const paged = (await users("ActiveUsers", 2)).getObject();
    assert.equal(paged.getUsers().length, 2);
    assert.equal(paged.getInfo().getMoreRecords(), true);
    assert.equal((await users("DeactiveUsers")).getStatusCode(), 204);
    const one = await new Z.Users.UsersOperations().getUser(all[1].getId(), new Z.HeaderMap());
    assert.equal(one.getObject().getUsers()[0].getEmail(), all[1].getEmail());
    const bad = await users("Everyone");
    assert.equal(bad.getStatusCode(), 400);
    assert.equal(bad.getObject().getCode().getValue(), "INVALID_DATA");
  });

  async function dealsLayoutId() {
    const params = new Z.ParameterMap();
    await params.add(Z.Layouts.GetLayoutsParam.MODULE, "Deals");
    const res = await new Z.Layouts.LayoutsOperations().getLayouts(params);
    assert.equal(res.getStatusCode(), 200);
    const layouts = res.getObject().getLayouts();
    assert.equal(layouts.length, 1);
    return layouts[0].getId();
  }

  test("pipelines of the Deals layout: stages with won and lost forecast types", async () => {
    const layoutId = await dealsLayoutId();
    const res = await new Z.Pipeline.PipelineOperations(layoutId).getPipelines();
    assert.equal(res.getStatusCode(), 200);
    const wrapper = res.getObject();
    assert.ok(wrapper instanceof Z.Pipeline.ResponseWrapper, wrapper?.constructor?.name);
    const pipelines = wrapper.getPipeline();
    assert.deepEqual(pipelines.map((p) => p.getDisplayValue()), ["Standard", "Renewals"]);
    assert.equal(pipelines[0].getDefault(), true);
    const stages = pipelines[0].getMaps();
    const types = Object.fromEntries(stages.map((m) => [m.getDisplayValue(), m.getForecastType()]));
    assert.equal(types["Closed Won"], "Closed Won");
    assert.equal(types["Closed Lost"], "Closed Lost");
    assert.equal(types["Qualification"], "Open");
    assert.equal(typeof stages[0].getId(), "bigint");
    const bad = await new Z.Pipeline.PipelineOperations(12345n).getPipelines();
    assert.equal(bad.getStatusCode(), 400);
    assert.equal(bad.getObject().getCode().getValue(), "INVALID_DATA");
  });

  function deal(fields) {
    const r = record({});
    for (const [k, v] of Object.entries(fields)) {
      r.addKeyValue(k, ["Stage", "Pipeline", "Currency"].includes(k) ? new Z.Choice(v) : v);
    }
    return r;
  }

  test("deals: create, read, list with page_token, update, upsert, delete, and the stage rules", async () => {
    const ops = new Z.Record.RecordOperations("Deals");
    const everyone = (await users("AllUsers")).getObject().getUsers();
    const ben = everyone.find((u) => u.getEmail() === "ben.okafor@ferry-demo.example");
    const owner = new Z.Users.MinifiedUser();
    owner.setId(ben.getId());
    const acc = await upsert("Accounts", [record({ Account_Name: "Sdk Deal Co", [SOURCE_ID]: "sdk-deal-acc" })]);
    const account = new Z.Record.Record();
    account.setId(BigInt(acc.getObject().getData()[0].getDetails().get("id")));

    const body = new Z.Record.BodyWrapper();
    body.setData([
      deal({ Deal_Name: "Sdk deal", Pipeline: "Standard", Stage: "Negotiation/Review", Amount: 99.5, Currency: "EUR",
        Account_Name: account, Owner: owner, [SOURCE_ID]: "sdk-deal-1" }),
      deal({ Deal_Name: "Sdk wrong pipeline", Pipeline: "Renewals", Stage: "Needs Analysis" }),
      deal({ Deal_Name: "Sdk no stage", Pipeline: "Standard" }),
    ]);
    const created = await ops.createRecords(body, new Z.HeaderMap());
    assert.equal(created.getStatusCode(), 207);
    const [ok, wrong, missing] = created.getObject().getData();
    assert.ok(ok instanceof Z.Record.SuccessResponse, ok?.constructor?.name);
    assert.ok(wrong instanceof Z.Record.APIException);
    assert.equal(wrong.getCode().getValue(), "INVALID_DATA");
    assert.equal(wrong.getDetails().get("api_name"), "Stage");
    assert.equal(missing.getCode().getValue(), "MANDATORY_NOT_FOUND");
    const id = BigInt(ok.getDetails().get("id"));

    const read = await ops.getRecord(id, new Z.ParameterMap(), new Z.HeaderMap());
    assert.equal(read.getStatusCode(), 200);
    const d = read.getObject().getData()[0];
    assert.equal(d.getId(), id);
    assert.equal(d.getKeyValue("Deal_Name"), "Sdk deal");
    assert.equal(d.getKeyValue("Stage").getValue(), "Negotiation/Review");
    assert.equal(d.getKeyValue("Pipeline").getValue(), "Standard");
    assert.equal(d.getKeyValue("Amount"), 99.5);
    assert.equal(d.getKeyValue("Owner").getEmail(), "ben.okafor@ferry-demo.example");
    assert.equal(d.getKeyValue("Account_Name").getId(), account.getId());

    const update = new Z.Record.BodyWrapper();
    update.setData([deal({ Stage: "Closed Won" })]);
    const updated = await ops.updateRecord(id, update, new Z.HeaderMap());
    assert.equal(updated.getStatusCode(), 200);
    assert.equal(updated.getObject().getData()[0].getCode().getValue(), "SUCCESS");

    const again = await upsert("Deals", [deal({ Deal_Name: "Sdk deal renamed", Pipeline: "Standard", Stage: "Closed Lost", [SOURCE_ID]: "sdk-deal-1" })]);
    assert.equal(again.getStatusCode(), 200);
    const up = again.getObject().getData()[0];
    assert.equal(up.getAction().getValue(), "update");
    assert.equal(String(up.getDetails().get("id")), String(id));

    // Every deal, seeded ones included, through page_token.
    const seen = new Set();
    let pageToken;
    for (;;) {
      const res = await listPage("Deals", "Deal_Name,Stage,Pipeline,Account_Name,Owner", { perPage: 50, pageToken });
      assert.equal(res.getStatusCode(), 200);
      const w = res.getObject();
      for (const r of w.getData()) seen.add(r.getId());
      if (!w.getInfo().getMoreRecords()) break;
      pageToken = w.getInfo().getNextPageToken();
    }
    assert.ok(seen.size > 1, "seeded deals are listed");
    assert.equal(seen.size, await moduleCount("Deals"));

    const params = new Z.ParameterMap();
    await params.add(Z.Record.DeleteRecordsParam.IDS, String(id));
    const deleted = await ops.deleteRecords(params, new Z.HeaderMap());
    assert.equal(deleted.getStatusCode(), 200);
    assert.equal(deleted.getObject().getData()[0].getCode().getValue(), "SUCCESS");
    const gone = await ops.getRecord(id, new Z.ParameterMap(), new Z.HeaderMap());
    assert.equal(gone.getStatusCode(), 204);
  });

  test("field metadata of Deals: mandatory name, stage and pipeline; owner and lookups", async () => {
    const fields = await moduleFields("Deals");
    const byName = (name) => fields.find((f) => f.getAPIName() === name);
    assert.equal(byName("Deal_Name").getSystemMandatory(), true);
    assert.equal(byName("Stage").getDataType(), "picklist");
    assert.equal(byName("Stage").getSystemMandatory(), true);
    assert.equal(byName("Pipeline").getSystemMandatory(), true);
    assert.equal(byName("Owner").getDataType(), "ownerlookup");
    assert.equal(byName("Account_Name").getDataType(), "lookup");
    assert.ok(byName("Stage").getPickListValues().some((o) => o.getDisplayValue() === "Closed Won"));
  });

  test("contact roles: a deal holds many contacts, each with a role", async () => {
    const roles = await new Z.ContactRoles.ContactRolesOperations().getRoles();
    assert.equal(roles.getStatusCode(), 200);
    const defined = roles.getObject().getContactRoles();
    assert.ok(defined.length >= 3);
    assert.equal(typeof defined[0].getName(), "string");

    const contacts = (await listPage("Contacts", "Last_Name", { perPage: 3 })).getObject().getData();
    const body = new Z.Record.BodyWrapper();
    body.setData([deal({ Deal_Name: "Sdk roles", Pipeline: "Standard", Stage: "Qualification" })]);
    const created = await new Z.Record.RecordOperations("Deals").createRecords(body, new Z.HeaderMap());
    assert.equal(created.getStatusCode(), 201);
    const dealId = BigInt(created.getObject().getData()[0].getDetails().get("id"));
    const ops = new Z.DealContactRoles.DealContactRolesOperations();
    for (const [i, c] of contacts.entries()) {
      const role = new Z.DealContactRoles.ContactRole();
      role.setName(defined[i].getName());
      const data = new Z.DealContactRoles.Data();
      await data.setContactRole(role);
      const wrapper = new Z.DealContactRoles.BodyWrapper();
      wrapper.setData([data]);
      const res = await ops.associateContactRoleToDeal(c.getId(), dealId, wrapper);
      assert.equal(res.getStatusCode(), 200);
      assert.equal(res.getObject().getData()[0].getCode().getValue(), "SUCCESS");
    }
    const params = new Z.ParameterMap();
    await params.add(Z.DealContactRoles.GetAssociatedContactRolesParam.FIELDS, "Last_Name,Email");
    const listed = await ops.getAssociatedContactRoles(dealId, params);
    assert.equal(listed.getStatusCode(), 200);
    const rows = listed.getObject().getData();
    assert.equal(rows.length, 3);
    const names = rows.map((r) => r.getKeyValue("Contact_Role")?.getName?.() ?? r.getKeyValue("Contact_Role")?.name);
    assert.deepEqual(names.sort(), defined.slice(0, 3).map((r) => r.getName()).sort());

    const one = await ops.getAssociatedContactRolesSpecificToContact(contacts[0].getId(), dealId);
    assert.equal(one.getStatusCode(), 200);
    const removed = await ops.deleteContactRoleRelation(contacts[0].getId(), dealId);
    assert.equal(removed.getStatusCode(), 200);
    const after = await ops.getAssociatedContactRoles(dealId, params);
    assert.equal(after.getObject().getData().length, 2);

    const bad = new Z.DealContactRoles.ContactRole();
    bad.setName("Astronaut");
    const data = new Z.DealContactRoles.Data();
    await data.setContactRole(bad);
    const wrapper = new Z.DealContactRoles.BodyWrapper();
    wrapper.setData([data]);
    const refused = await ops.associateContactRoleToDeal(contacts[0].getId(), dealId, wrapper);
    assert.equal(refused.getStatusCode(), 400);
  });

  test("notes: one parent in the v8 form, paging, update, the Note_Content limit, delete", async () => {
    const deals = (await listPage("Deals", "Deal_Name", { perPage: 1 })).getObject().getData();
    const parent = new Z.Notes.ParentId();
    const module = new Z.Modules.MinifiedModule();
    module.setAPIName("Deals");
    await parent.setModule(module);
    await parent.setId(deals[0].getId());
    const note = (content) => {
      const n = new Z.Notes.Note();
      n.setNoteTitle("Sdk");
      n.setNoteContent(content);
      return n;
    };
    const ok = note("Kunde wünscht eine Demo\n見積書");
    await ok.setParentId(parent);
    const tooLong = note("x".repeat(65_536));
    await tooLong.setParentId(parent);
    const orphan = note("no parent");
    const body = new Z.Notes.BodyWrapper();
    body.setData([ok, tooLong, orphan]);
    const ops = new Z.Notes.NotesOperations();
    const res = await ops.createNotes(body);
    assert.equal(res.getStatusCode(), 207);
    const [created, long, noParent] = res.getObject().getData();
    assert.ok(created instanceof Z.Notes.SuccessResponse, created?.constructor?.name);
    assert.ok(long instanceof Z.Notes.APIException, long?.constructor?.name);
    assert.equal(long.getCode().getValue(), "INVALID_DATA");
    assert.equal(long.getDetails().get("api_name"), "Note_Content");
    assert.equal(Number(long.getDetails().get("maximum_length")), 65_535);
    assert.equal(noParent.getCode().getValue(), "MANDATORY_NOT_FOUND");
    const id = BigInt(created.getDetails().get("id"));

    const params = new Z.ParameterMap();
    await params.add(Z.Notes.GetNoteParam.FIELDS, "Note_Content,Parent_Id,Owner");
    const read = await ops.getNote(id, params, new Z.HeaderMap());
    assert.equal(read.getStatusCode(), 200);
    const n = read.getObject().getData()[0];
    assert.equal(n.getNoteContent(), "Kunde wünscht eine Demo\n見積書");
    assert.equal(n.getParentId().getModule().getAPIName(), "Deals");
    assert.equal(n.getParentId().getId(), deals[0].getId());
    assert.equal(n.getOwner().getEmail(), "ana.garcia@ferry-demo.example");

    // Every note, seeded ones included, by page number.
    let count = 0;
    for (let page = 1; ; page++) {
      const p = new Z.ParameterMap();
      await p.add(Z.Notes.GetNotesParam.FIELDS, "Note_Content,Parent_Id");
      await p.add(Z.Notes.GetNotesParam.PER_PAGE, "200");
      await p.add(Z.Notes.GetNotesParam.PAGE, String(page));
      const listed = await ops.getNotes(p, new Z.HeaderMap());
      assert.equal(listed.getStatusCode(), 200);
      const w = listed.getObject();
      count += w.getData().length;
      if (!w.getInfo().getMoreRecords()) break;
    }
    assert.ok(count > 1, "seeded notes are listed");
    assert.equal(count, await moduleCount("Notes"));

    const change = new Z.Notes.BodyWrapper();
    const edit = new Z.Notes.Note();
    edit.setNoteTitle("Sdk renamed");
    change.setData([edit]);
    const updated = await ops.updateNote(id, change);
    assert.equal(updated.getStatusCode(), 200);
    const del = await ops.deleteNote(id);
    assert.equal(del.getStatusCode(), 200);
    assert.equal(del.getObject().getData()[0].getCode().getValue(), "SUCCESS");
  });

  // Last in this suite: it re-initialises the SDK with a token the emulator never issued.
  test("a bad token is the SDK's APIException with 401 INVALID_TOKEN", async () => {
    await init(sb.url, new Z.OAuthBuilder().accessToken("1000.not-a-token").findUser(false).build(), dir);
    const res = await new Z.Record.RecordOperations("Contacts").recordCount(new Z.ParameterMap());
    assert.equal(res.getStatusCode(), 401);
    const e = res.getObject();
    assert.ok(e instanceof Z.Record.APIException);
    assert.equal(e.getCode().getValue(), "INVALID_TOKEN");
    assert.equal(e.getMessage().getValue(), "invalid oauth token");
    // A record call answers the same APIException, or, when it must first load the module's
    // field metadata (not cached yet), throws Zoho's answer as an SDKException.
    let code;
    try {
      const list = await listPage("Contacts", "Last_Name");
      assert.equal(list.getStatusCode(), 401);
      code = list.getObject().getCode().getValue();
    } catch (err) {
      assert.ok(err instanceof Z.SDKException, String(err));
      assert.equal(err.code, "API_EXCEPTION");
      code = err.message.match(/"code":"(\w+)"/)?.[1];
    }
    assert.equal(code, "INVALID_TOKEN");
    // A refresh grant with a wrong secret fails in the SDK's token code with Zoho's error.
    const wrong = new Z.OAuthBuilder()
      .clientId(sb.env.ZOHO_CLIENT_ID)
      .clientSecret("wrong")
      .refreshToken(sb.env.ZOHO_REFRESH_TOKEN)
      .findUser(false)
      .build();
    await assert.rejects(init(sb.url, wrong, dir), (err) => {
      assert.ok(err instanceof Z.SDKException);
      assert.equal(err.message, "invalid_client_secret");
      return true;
    });
  });
});

describe("zoho: injected 429s (ferry sandbox --throttle)", () => {
  test("an injected 429 is the SDK's APIException TOO_MANY_REQUESTS; its GETs retry", async () => {
    const sb = await startSandbox("zoho", { records: 10, flags: ["--throttle", "zoho=2"] });
    const dir = mkdtempSync(join(tmpdir(), "ferry-zoho-sdk-"));
    try {
      await init(sb.url, refreshToken(sb.env), dir);
      // The SDK's HTTP client (got) retries a GET answered 429 (here its field-metadata reads),
      // so the read succeeds.
      assert.equal((await listPage("Contacts", "Last_Name")).getStatusCode(), 200);
      // It does not retry a POST: the throttled upsert reaches the caller.
      const statuses = [];
      let limited;
      for (let i = 0; i < 4 && !limited; i++) {
        const res = await upsert("Contacts", [record({ Last_Name: "T", [SOURCE_ID]: `t-${i}` })]);
        statuses.push(res.getStatusCode());
        if (res.getStatusCode() === 429) limited = res;
      }
      assert.ok(limited, `a 429 among ${statuses}`);
      const e = limited.getObject();
      assert.ok(e instanceof Z.Record.APIException);
      assert.equal(e.getCode().getValue(), "TOO_MANY_REQUESTS");
      assert.equal(e.getStatus().getValue(), "error");
      assert.equal(limited.getHeaders()["retry-after"], undefined);
    } finally {
      await sb.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
