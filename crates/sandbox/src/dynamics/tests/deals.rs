//! Opportunities, notes, users, owners and the sales process stages, over real HTTP.

use super::*;

impl Env {
    async fn post(&self, rest: &str, headers: &[(&str, &str)], body: Json) -> (u16, Json) {
        let (status, _, json) = self
            .send(reqwest::Method::POST, &self.url(rest), headers, Some(body))
            .await;
        (status, json)
    }

    async fn delete(&self, rest: &str) -> u16 {
        self.send(reqwest::Method::DELETE, &self.url(rest), &[], None)
            .await
            .0
    }

    /// `systemuserid` of the user whose address is `email` (case ignored).
    async fn user(&self, email: &str) -> String {
        let (status, _, page) = self
            .get(
                &format!(
                    "systemusers?$select=systemuserid&$filter=internalemailaddress eq '{email}'"
                ),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{page}");
        page["value"][0]["systemuserid"]
            .as_str()
            .unwrap_or_else(|| panic!("no user {email}: {page}"))
            .to_owned()
    }

    async fn me(&self) -> String {
        let (_, _, me) = self.get("WhoAmI", &[]).await;
        me["UserId"].as_str().expect("UserId").to_owned()
    }

    /// Creates an account and returns its id.
    async fn account(&self, key: &str) -> String {
        let (status, _, body) = self
            .patch(
                &format!("accounts(ferry_sourceid='{key}')"),
                &[("Prefer", "return=representation")],
                json!({"name": key}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["accountid"].as_str().expect("id").to_owned()
    }

    async fn contact(&self, key: &str) -> String {
        let (status, _, body) = self
            .patch(
                &format!("contacts(ferry_sourceid='{key}')"),
                &[("Prefer", "return=representation")],
                json!({"lastname": key}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["contactid"].as_str().expect("id").to_owned()
    }
}

fn code(body: &Json) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn message(body: &Json) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn systemusers_list_the_account_users_with_disabled_ones_and_the_app_user() {
    let env = env(Options::default()).await;
    let (status, _, page) = env
        .get(
            "systemusers?$select=fullname,internalemailaddress,isdisabled,accessmode",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let users = page["value"].as_array().expect("value");
    assert_eq!(
        users.len(),
        crate::accounts::account_users("dynamics").len() + 1,
        "the account's users and the application user"
    );
    let me = env.me().await;
    let app = users
        .iter()
        .find(|u| u["systemuserid"] == me.as_str())
        .expect("WhoAmI's user is listed");
    assert_eq!(app["accessmode"], 4, "non-interactive");
    assert!(app["internalemailaddress"].is_null());
    // Gorō is disabled in this account; Chloé's address is held in capitals.
    let goro = users
        .iter()
        .find(|u| u["internalemailaddress"] == "goro.tanaka@ferry-demo.example")
        .expect("Gorō");
    assert_eq!(goro["isdisabled"], true);
    assert_eq!(goro["fullname"], "Gorō Tanaka");
    assert!(
        users
            .iter()
            .any(|u| u["internalemailaddress"] == "CHLOE.MARTIN@FERRY-DEMO.EXAMPLE")
    );
    // $filter ignores case, as Dataverse's collation does; paging follows nextLink.
    assert_eq!(env.user("chloe.martin@ferry-demo.example").await.len(), 36);
    let (_, _, enabled) = env
        .get(
            "systemusers?$select=fullname&$filter=isdisabled eq false",
            &[],
        )
        .await;
    assert_eq!(
        enabled["value"].as_array().map(Vec::len),
        Some(users.len() - 1)
    );
    let (_, _, first) = env
        .get(
            "systemusers?$select=fullname",
            &[("Prefer", "odata.maxpagesize=3")],
        )
        .await;
    assert_eq!(first["value"].as_array().map(Vec::len), Some(3));
    let next = first["@odata.nextLink"].as_str().expect("nextLink");
    let (_, _, second) = env
        .send(
            reqwest::Method::GET,
            next,
            &[("Prefer", "odata.maxpagesize=3")],
            None,
        )
        .await;
    assert_eq!(second["value"].as_array().map(Vec::len), Some(3));
    assert_ne!(first["value"][0], second["value"][0]);
    let (status, _, _) = env.get("systemusers?$select=nosuchcolumn", &[]).await;
    assert_eq!(status, 400);
    let (status, body) = env.post("systemusers", &[], json!({"fullname": "x"})).await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn owners_of_accounts_and_contacts_are_bound_validated_and_default_to_the_caller() {
    let env = env(Options::default()).await;
    let me = env.me().await;
    let id = env.account("own-1").await;
    let (_, _, account) = env
        .get(&format!("accounts({id})?$select=_ownerid_value"), &[])
        .await;
    assert_eq!(
        account["_ownerid_value"],
        me.as_str(),
        "the caller by default"
    );

    let ana = env.user("ana.garcia@ferry-demo.example").await;
    let (status, _, body) = env
        .patch(
            "contacts(ferry_sourceid='own-c')",
            &[("Prefer", "return=representation")],
            json!({"lastname": "Owned", "ownerid@odata.bind": format!("/systemusers({ana})")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["_ownerid_value"], ana.as_str());
    let (_, _, filtered) = env
        .get(
            &format!("contacts?$select=lastname&$filter=_ownerid_value eq {ana}"),
            &[],
        )
        .await;
    assert_eq!(filtered["value"].as_array().map(Vec::len), Some(1));

    // An unknown user: Dataverse's 404 for a lookup to a missing record.
    let missing = "5e5e5e5e-0000-0000-0000-0000000000ff";
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='own-1')",
            &[],
            json!({"ownerid@odata.bind": format!("/systemusers({missing})")}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(code(&body), "0x80040217");
    assert_eq!(
        message(&body),
        format!("systemuser With Id = {missing} Does Not Exist")
    );
    // A disabled user cannot own records.
    let goro = env.user("goro.tanaka@ferry-demo.example").await;
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='own-1')",
            &[],
            json!({"ownerid@odata.bind": format!("/systemusers({goro})")}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "0x80040203");
    assert!(message(&body).contains("disabled"), "{body}");
    // Nothing changed.
    let (_, _, account) = env
        .get(&format!("accounts({id})?$select=_ownerid_value"), &[])
        .await;
    assert_eq!(account["_ownerid_value"], me.as_str());
    // Owner metadata: an Owner lookup to users and teams.
    let (status, _, attr) = env
        .get(
            "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='ownerid')",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{attr}");
    assert_eq!(attr["AttributeType"], "Owner");
    assert_eq!(attr["Targets"], json!(["systemuser", "team"]));
}

#[tokio::test]
async fn seeded_accounts_contacts_deals_and_notes_carry_owners_stages_and_times() {
    let env = env(Options::default()).await;
    let data = generate(200, 11, &Mess::none());
    let seeded = env.emulator.seed(&data);
    assert_eq!(seeded.opportunities, data.deals.len());
    assert!(seeded.opportunities > 0 && seeded.annotations > 0);
    assert_eq!(
        seeded.annotations + seeded.skipped_annotations,
        data.notes.len()
    );
    let summary = crate::VendorEmulator::seed(&Emulator::new(Options::default()), &data);
    assert_eq!(summary.deals, data.deals.len());
    assert_eq!(summary.notes, seeded.annotations);
    assert_eq!(
        crate::VendorEmulator::count(&env.emulator, "deals"),
        data.deals.len()
    );
    assert_eq!(
        crate::VendorEmulator::count(&env.emulator, "notes"),
        seeded.annotations
    );

    let me = env.me().await;
    let (_, _, accounts) = env.get("accounts?$select=_ownerid_value", &[]).await;
    let owners: std::collections::HashSet<&str> = accounts["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["_ownerid_value"].as_str())
        .collect();
    assert!(owners.len() > 2, "seeded owners, not only the caller");

    let (_, _, deals) = env
        .get(
            "opportunities?$select=name,statecode,statuscode,salesstage,stepname,_stageid_value,_customerid_value,customeridtype,_parentcontactid_value,_transactioncurrencyid_value,_ownerid_value,estimatedclosedate,actualclosedate",
            &[],
        )
        .await;
    let deals = deals["value"].as_array().expect("value");
    assert_eq!(deals.len(), data.deals.len());
    for state in [0, 1, 2] {
        assert!(
            deals.iter().any(|d| d["statecode"] == state),
            "state {state}"
        );
    }
    for stage in 0..4 {
        assert!(
            deals.iter().any(|d| d["salesstage"] == stage),
            "stage {stage}"
        );
    }
    for (row, deal) in deals.iter().zip(&data.deals) {
        assert_eq!(row["name"], deal.name.as_str());
        assert_eq!(row["estimatedclosedate"], deal.close_date.as_str());
        let (_, stage) = deal.seed_stage();
        let closed = stage.outcome != crate::accounts::Outcome::Open;
        assert_eq!(row["actualclosedate"].is_string(), closed);
        assert!(row["_stageid_value"].is_string());
        assert!(row["_transactioncurrencyid_value"].is_string());
        assert!(row["_ownerid_value"].is_string());
        assert_eq!(
            row["_parentcontactid_value"].is_string(),
            !deal.contacts.is_empty()
        );
        assert_eq!(
            row["customeridtype"].is_string(),
            row["_customerid_value"].is_string()
        );
    }
    // The stage GUIDs are the process's stages.
    let (_, _, stages) = env
        .get(
            "processstages?$select=stagename,stagecategory,_processid_value",
            &[],
        )
        .await;
    let stages = stages["value"].as_array().expect("stages");
    assert_eq!(
        stages
            .iter()
            .map(|s| s["stagename"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["Qualify", "Develop", "Propose", "Close"]
    );
    for row in deals {
        let stage = stages
            .iter()
            .find(|s| s["processstageid"] == row["_stageid_value"])
            .expect("a process stage");
        assert_eq!(stage["stagecategory"], row["salesstage"]);
    }
    let (_, _, process) = env
        .get("workflows?$select=name,category&$filter=category eq 4", &[])
        .await;
    assert_eq!(process["value"][0]["name"], "Opportunity Sales Process");
    assert_eq!(
        process["value"][0]["workflowid"],
        stages[0]["_processid_value"]
    );

    // Notes: createdon is the note's own time, the parent one of its parents.
    let (_, _, notes) = env
        .get(
            "annotations?$select=notetext,createdon,_objectid_value,objecttypecode,_ownerid_value",
            &[],
        )
        .await;
    let notes = notes["value"].as_array().expect("notes");
    assert_eq!(notes.len(), seeded.annotations);
    assert!(notes.iter().all(|n| n["_objectid_value"].is_string()));
    for kind in ["account", "contact", "opportunity"] {
        assert!(notes.iter().any(|n| n["objecttypecode"] == kind), "{kind}");
    }
    let first = &data.notes[0];
    assert_eq!(notes[0]["notetext"], first.body.as_str());
    assert_eq!(
        notes[0]["createdon"],
        crate::dynamics::odata::iso(first.timestamp_ms).as_str()
    );
    assert!(notes.iter().any(|n| n["_ownerid_value"] != me.as_str()));
}

#[tokio::test]
async fn opportunities_upsert_by_key_with_binds_and_read_back_lookups() {
    let env = env(Options::default()).await;
    let account = env.account("acc-1").await;
    let contact = env.contact("con-1").await;
    let ben = env.user("ben.okafor@ferry-demo.example").await;
    let (_, _, eur) = env
        .get(
            "transactioncurrencies?$select=isocurrencycode&$filter=isocurrencycode eq 'EUR'",
            &[],
        )
        .await;
    let eur = eur["value"][0]["transactioncurrencyid"]
        .as_str()
        .expect("EUR")
        .to_owned();
    let (status, _, body) = env
        .patch(
            "opportunities(ferry_sourceid='deal-1')",
            &[("Prefer", "return=representation")],
            json!({
                "name": "Ünïcødé renewal",
                "estimatedvalue": 1234.567,
                "estimatedclosedate": "2027-03-31",
                "salesstage": 2,
                "customerid_account@odata.bind": format!("/accounts({account})"),
                "parentaccountid@odata.bind": "/accounts(ferry_sourceid='acc-1')",
                "parentcontactid@odata.bind": format!("/contacts({contact})"),
                "transactioncurrencyid@odata.bind": format!("/transactioncurrencies({eur})"),
                "ownerid@odata.bind": format!("/systemusers({ben})"),
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["estimatedvalue"], 1234.57, "Money has two decimals");
    assert_eq!(body["_customerid_value"], account.as_str());
    assert_eq!(body["customeridtype"], "account");
    assert_eq!(body["_parentaccountid_value"], account.as_str());
    assert_eq!(body["_parentcontactid_value"], contact.as_str());
    assert_eq!(body["_transactioncurrencyid_value"], eur.as_str());
    assert_eq!(body["_ownerid_value"], ben.as_str());
    assert_eq!(body["statecode"], 0);
    assert_eq!(body["statuscode"], 1);
    assert_eq!(body["stepname"], "3-Propose");
    assert_eq!(body["ferry_sourceid"], "deal-1");
    let id = body["opportunityid"].as_str().expect("id").to_owned();

    // Update by key; read by id and by key; $filter by key uses the index.
    let (status, _, _) = env
        .patch(
            "opportunities(ferry_sourceid='DEAL-1')",
            &[("If-Match", "*")],
            json!({"salesstage": 3, "customerid_contact@odata.bind": format!("/contacts({contact})")}),
        )
        .await;
    assert_eq!(status, 204, "the key ignores case");
    let (status, _, read) = env
        .get(
            &format!(
                "opportunities({id})?$select=salesstage,stepname,_customerid_value,customeridtype"
            ),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["salesstage"], 3);
    assert_eq!(read["stepname"], "4-Close");
    assert_eq!(read["_customerid_value"], contact.as_str());
    assert_eq!(read["customeridtype"], "contact");
    let (_, _, found) = env
        .get(
            "opportunities?$select=name&$filter=ferry_sourceid eq 'deal-1'",
            &[],
        )
        .await;
    assert_eq!(found["value"][0]["opportunityid"], id.as_str());

    // $expand of lookups: the currency's code, the account by its key, a customer of the
    // other table is null.
    let (status, _, expanded) = env
        .get(
            "opportunities?$select=name&$filter=ferry_sourceid eq 'deal-1'&$expand=transactioncurrencyid($select=isocurrencycode),parentaccountid($select=name,ferry_sourceid),customerid_account,customerid_contact($select=lastname)",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{expanded}");
    let row = &expanded["value"][0];
    assert_eq!(row["transactioncurrencyid"]["isocurrencycode"], "EUR");
    assert_eq!(row["parentaccountid"]["ferry_sourceid"], "acc-1");
    assert!(
        row["customerid_account"].is_null(),
        "the customer is now the contact"
    );
    assert_eq!(row["customerid_contact"]["lastname"], "con-1");
    let (status, _, single) = env
        .get(
            &format!("opportunities({id})?$select=name&$expand=parentcontactid($select=lastname)"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{single}");
    assert_eq!(single["parentcontactid"]["contactid"], contact.as_str());
    for bad in [
        "ownerid",
        "nosuchnav",
        "transactioncurrencyid($select=nosuch)",
        "parentaccountid($select=nosuch)",
        "parentaccountid($top=1)",
    ] {
        let (status, _, body) = env.get(&format!("opportunities?$expand={bad}"), &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // A create without currency or owner gets the base currency and the caller.
    let (status, _, plain) = env
        .post_repr("opportunities", json!({"name": "Plain"}))
        .await;
    assert_eq!(status, 201, "{plain}");
    let (_, _, usd) = env
        .get(
            "transactioncurrencies?$filter=isocurrencycode eq 'USD'",
            &[],
        )
        .await;
    assert_eq!(
        plain["_transactioncurrencyid_value"],
        usd["value"][0]["transactioncurrencyid"]
    );
    assert_eq!(plain["_ownerid_value"], env.me().await.as_str());
    assert_eq!(plain["salesstage"], 0, "the process's first stage");

    // Errors: name over 300, a missing account, an unknown navigation property, a lookup
    // written by value, a duplicate key, a closed state by PATCH.
    let (status, body) = env
        .post("opportunities", &[], json!({"name": "x".repeat(301)}))
        .await;
    assert_eq!((status, code(&body)), (400, "0x80044331"), "{body}");
    assert!(message(&body).contains("'name' attribute of the 'opportunity' entity"));
    let missing = "a0c00000-0000-4000-8000-0000000000ff";
    let (status, body) = env
        .post(
            "opportunities",
            &[],
            json!({"name": "n", "parentaccountid@odata.bind": format!("/accounts({missing})")}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "0x80040217"), "{body}");
    let (status, body) = env
        .post(
            "opportunities",
            &[],
            json!({"name": "n", "customerid_lead@odata.bind": "/leads(00000000-0000-0000-0000-000000000001)"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, body) = env
        .post(
            "opportunities",
            &[],
            json!({"name": "n", "parentaccountid": account}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, body) = env
        .post(
            "opportunities",
            &[],
            json!({"name": "n", "ferry_sourceid": "Deal-1"}),
        )
        .await;
    assert_eq!((status, code(&body)), (412, "0x80060892"), "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"statecode": 1}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80040203"), "{body}");
    assert!(message(&body).contains("WinOpportunity"));
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"statuscode": 3}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"salesstage": 9}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x8004431a"), "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"estimatedclosedate": "2027-02-30"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    // PATCH by an unknown id answers 404 (creating with a chosen GUID is not emulated).
    let (status, _, _) = env
        .patch(
            "opportunities(0dd00000-0000-0000-0000-000000000099)",
            &[],
            json!({"name": "n"}),
        )
        .await;
    assert_eq!(status, 404);
}

impl Env {
    async fn post_repr(&self, rest: &str, body: Json) -> (u16, (), Json) {
        let (status, json) = self
            .post(rest, &[("Prefer", "return=representation")], body)
            .await;
        (status, (), json)
    }
}

#[tokio::test]
async fn win_and_lose_close_opportunities_which_are_then_read_only_until_reopened() {
    let env = env(Options::default()).await;
    let (_, _, deal) = env
        .post_repr(
            "opportunities",
            json!({"name": "To win", "estimatedvalue": 500}),
        )
        .await;
    let id = deal["opportunityid"].as_str().expect("id").to_owned();
    let bind = format!("/opportunities({id})");

    // Wrong status for the action, missing parameters.
    let (status, body) = env
        .post(
            "WinOpportunity",
            &[],
            json!({"Status": 5, "OpportunityClose": {"opportunityid@odata.bind": bind}}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80040203"), "{body}");
    let (status, body) = env.post("WinOpportunity", &[], json!({"Status": 3})).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("OpportunityClose"));
    let (status, body) = env
        .post(
            "WinOpportunity",
            &[],
            json!({"Status": 3, "OpportunityClose": {"opportunityid@odata.bind": "/opportunities(0dd00000-0000-0000-0000-0000000000aa)"}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = env
        .post(
            "WinOpportunity",
            &[],
            json!({"Status": 3, "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": bind, "actualend": "2027-01-15"}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, _, won) = env
        .get(
            &format!(
                "opportunities({id})?$select=statecode,statuscode,actualvalue,actualclosedate"
            ),
            &[],
        )
        .await;
    assert_eq!(won["statecode"], 1);
    assert_eq!(won["statuscode"], 3);
    assert_eq!(
        won["actualvalue"], 500.0,
        "the estimate when no actual revenue is given"
    );
    assert_eq!(won["actualclosedate"], "2027-01-15");

    // Closed: read-only, and not closed twice.
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"name": "changed"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80040203"), "{body}");
    assert!(message(&body).contains("closed"));
    let (status, body) = env
        .post(
            "LoseOpportunity",
            &[],
            json!({"Status": 4, "OpportunityClose": {"opportunityid@odata.bind": bind}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Reopen (statecode 0), then lose it.
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"statecode": 0, "statuscode": 2}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = env
        .post(
            "LoseOpportunity",
            &[],
            json!({"Status": 5, "OpportunityClose": {"opportunityid@odata.bind": "/opportunities(ferry_sourceid='none')"}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = env
        .post(
            "LoseOpportunity",
            &[],
            json!({"Status": 5, "OpportunityClose": {"opportunityid@odata.bind": bind, "actualrevenue": 0}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, _, lost) = env
        .get(
            &format!("opportunities({id})?$select=statecode,statuscode"),
            &[],
        )
        .await;
    assert_eq!(
        (lost["statecode"].as_i64(), lost["statuscode"].as_i64()),
        (Some(2), Some(5))
    );

    // In a $batch change set, a failed action rolls the change set back.
    let (_, _, other) = env
        .post_repr("opportunities", json!({"name": "Batch"}))
        .await;
    let other = other["opportunityid"].as_str().expect("id").to_owned();
    let body = format!(
        "--batch_t1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
POST {API_PREFIX}WinOpportunity HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"Status\":3,\"OpportunityClose\":{{\"opportunityid@odata.bind\":\"/opportunities({other})\"}}}}\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
POST {API_PREFIX}opportunities HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"in the change set\"}}\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 3\r\n\r\n\
POST {API_PREFIX}opportunities HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"bogus\":1}}\r\n\
--changeset_c1--\r\n--batch_t1--\r\n"
    );
    let before = env.emulator.count("opportunity");
    let (status, text) = super::post_batch(&env, body, true).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("0x80048d19"), "{text}");
    assert_eq!(
        env.emulator.count("opportunity"),
        before,
        "the create rolled back"
    );
    let (_, _, still) = env
        .get(&format!("opportunities({other})?$select=statecode"), &[])
        .await;
    assert_eq!(still["statecode"], 0, "the win rolled back");
}

#[tokio::test]
async fn notes_hang_on_one_parent_keep_their_time_and_refuse_overlong_text() {
    let env = env(Options::default()).await;
    let contact = env.contact("note-parent").await;
    let (status, _, note) = env
        .patch(
            "annotations(ferry_sourceid='n-1')",
            &[("Prefer", "return=representation")],
            json!({
                "subject": "Call",
                "notetext": "<div>Größe &amp; <b>bold</b></div>",
                "overriddencreatedon": "2021-05-04T03:02:01Z",
                "objectid_contact@odata.bind": format!("/contacts({contact})"),
            }),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(
        note["createdon"], "2021-05-04T03:02:01Z",
        "the original time"
    );
    assert_ne!(note["overriddencreatedon"], "2021-05-04T03:02:01Z");
    assert_eq!(note["_objectid_value"], contact.as_str());
    assert_eq!(note["objecttypecode"], "contact");
    assert_eq!(note["_ownerid_value"], env.me().await.as_str());
    assert_eq!(note["isdocument"], false);
    let (status, body) = env
        .post("annotations", &[], json!({"notetext": "x".repeat(100_000)}))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = env
        .post("annotations", &[], json!({"notetext": "é".repeat(100_001)}))
        .await;
    assert_eq!((status, code(&body)), (400, "0x80044331"), "{body}");
    assert!(message(&body).contains("'100000'"), "{body}");
    let (status, body) = env
        .post(
            "annotations",
            &[],
            json!({"notetext": "n", "objectid_lead@odata.bind": "/leads(00000000-0000-0000-0000-000000000001)"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, body) = env
        .post(
            "annotations",
            &[],
            json!({"notetext": "n", "overriddencreatedon": "yesterday"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    // Metadata: notetext is rich text of 100,000; the regarding lookup's targets.
    let (status, _, attrs) = env
        .get(
            "EntityDefinitions(LogicalName='annotation')/Attributes",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{attrs}");
    let attrs = attrs["value"].as_array().expect("value");
    let find = |n: &str| attrs.iter().find(|a| a["LogicalName"] == n).expect(n);
    assert_eq!(find("notetext")["MaxLength"], 100_000);
    assert_eq!(
        find("objectid")["Targets"],
        json!(["account", "contact", "opportunity"])
    );
    let (_, _, keys) = env
        .get("EntityDefinitions(LogicalName='annotation')/Keys", &[])
        .await;
    assert_eq!(keys["value"][0]["KeyAttributes"], json!(["ferry_sourceid"]));
}

#[tokio::test]
async fn deleting_an_account_cascades_to_its_contacts_deals_and_notes_and_unlinks_the_rest() {
    let env = env(Options::default()).await;
    let account = env.account("cascade").await;
    let contact = env.contact("cascade-c").await;
    // A contact of the account (`contact_customer_accounts`, parental): it goes, with its note.
    let (status, _, child) = env
        .patch(
            "contacts(ferry_sourceid='cascade-child')",
            &[("Prefer", "return=representation")],
            json!({"lastname": "child", "parentcustomerid_account@odata.bind": format!("/accounts({account})")}),
        )
        .await;
    assert_eq!(status, 201, "{child}");
    let child = child["contactid"].as_str().expect("id").to_owned();
    let contacts = env.emulator.count("contact");
    let (_, _, owned) = env
        .post_repr(
            "opportunities",
            json!({"name": "customer", "customerid_account@odata.bind": format!("/accounts({account})")}),
        )
        .await;
    let owned = owned["opportunityid"].as_str().expect("id").to_owned();
    let (_, _, linked) = env
        .post_repr(
            "opportunities",
            json!({
                "name": "linked",
                "parentaccountid@odata.bind": format!("/accounts({account})"),
                "customerid_contact@odata.bind": format!("/contacts({contact})"),
            }),
        )
        .await;
    let linked = linked["opportunityid"].as_str().expect("id").to_owned();
    for (nav, set, id) in [
        ("objectid_account", "accounts", &account),
        ("objectid_opportunity", "opportunities", &owned),
        ("objectid_opportunity", "opportunities", &linked),
        ("objectid_contact", "contacts", &child),
    ] {
        let (status, body) = env
            .post(
                "annotations",
                &[],
                json!({"notetext": "n", format!("{nav}@odata.bind"): format!("/{set}({id})")}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(env.emulator.count("annotation"), 4);
    assert_eq!(env.delete(&format!("accounts({account})")).await, 204);
    assert_eq!(
        env.emulator.count("contact"),
        contacts - 1,
        "its contact went"
    );
    let (status, _, _) = env.get(&format!("contacts({child})"), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(
        env.emulator.count("opportunity"),
        1,
        "the customer's deal went"
    );
    assert_eq!(
        env.emulator.count("annotation"),
        1,
        "with its notes, the account's and the contact's"
    );
    let (status, _, body) = env.get(&format!("opportunities({owned})"), &[]).await;
    assert_eq!((status, code(&body)), (404, "0x80040217"));
    let (_, _, kept) = env
        .get(
            &format!("opportunities({linked})?$select=_parentaccountid_value,_customerid_value"),
            &[],
        )
        .await;
    assert!(
        kept["_parentaccountid_value"].is_null(),
        "RemoveLink: {kept}"
    );
    assert_eq!(kept["_customerid_value"], contact.as_str());
    // Deleting the deal deletes its note.
    assert_eq!(env.delete(&format!("opportunities({linked})")).await, 204);
    assert_eq!(env.emulator.count("annotation"), 0);
    assert_eq!(env.delete(&format!("opportunities({linked})")).await, 404);
}

#[tokio::test]
async fn opportunities_page_with_next_links_filters_and_metadata() {
    let env = env(Options::default()).await;
    env.emulator.seed(&generate(300, 5, &Mess::none()));
    let total = env.emulator.count("opportunity");
    assert!(total > 20, "{total}");
    let mut ids = std::collections::HashSet::new();
    let mut url = env.url("opportunities?$select=name");
    loop {
        let (status, headers, page) = env
            .send(
                reqwest::Method::GET,
                &url,
                &[("Prefer", "odata.maxpagesize=7")],
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(headers["preference-applied"], "odata.maxpagesize=7");
        for row in page["value"].as_array().expect("value") {
            assert!(ids.insert(row["opportunityid"].as_str().expect("id").to_owned()));
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(ids.len(), total);
    let (_, _, top) = env.get("opportunities?$select=name&$top=3", &[]).await;
    assert_eq!(top["value"].as_array().map(Vec::len), Some(3));
    assert!(top.get("@odata.nextLink").is_none());
    let (_, _, won) = env
        .get(
            "opportunities?$select=name&$filter=statecode eq 1&$count=true",
            &[],
        )
        .await;
    let n = won["@odata.count"].as_u64().expect("count");
    assert!(n > 0 && (n as usize) < total);
    let (status, _, body) = env.get("opportunities?$filter=nosuch eq 1", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("nosuch"));
    let (status, _, _) = env.get("opportunities?$skip=5", &[]).await;
    assert_eq!(status, 400);

    let (status, _, attrs) = env
        .get(
            "EntityDefinitions(LogicalName='opportunity')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{attrs}");
    let stage = attrs["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|a| a["LogicalName"] == "salesstage")
        .expect("salesstage")
        .clone();
    let labels: Vec<&str> = stage["OptionSet"]["Options"]
        .as_array()
        .expect("options")
        .iter()
        .filter_map(|o| o["Label"]["UserLocalizedLabel"]["Label"].as_str())
        .collect();
    assert_eq!(labels, ["Qualify", "Develop", "Propose", "Close"]);
    let (_, _, name) = env
        .get(
            "EntityDefinitions(LogicalName='opportunity')/Attributes(LogicalName='name')",
            &[],
        )
        .await;
    assert_eq!(name["MaxLength"], 300);
    let (_, _, keys) = env
        .get("EntityDefinitions(LogicalName='opportunity')/Keys", &[])
        .await;
    assert_eq!(keys["value"][0]["KeyAttributes"], json!(["ferry_sourceid"]));
}

#[tokio::test]
async fn every_refusal_of_the_new_tables_has_its_dataverse_error() {
    let env = env(Options {
        enforce_required: true,
        ..Options::default()
    })
    .await;
    let (status, _, deal) = env
        .patch(
            "opportunities(ferry_sourceid='err-1')",
            &[("Prefer", "return=representation")],
            json!({"name": "Errors"}),
        )
        .await;
    assert_eq!(status, 201, "{deal}");
    let id = deal["opportunityid"].as_str().expect("id").to_owned();
    let etag = deal["@odata.etag"].as_str().expect("etag").to_owned();

    // Owners: null, a team, a bind to the wrong table.
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"ownerid@odata.bind": null}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, _, body) = env
        .patch(
            "accounts(ferry_sourceid='err-acc')",
            &[],
            json!({"name": "A", "ownerid@odata.bind": null}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"ownerid@odata.bind": "/teams(00000000-0000-0000-0000-000000000007)"}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "0x80040217"), "{body}");
    assert!(message(&body).starts_with("team With Id"), "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"customerid_account@odata.bind": "/contacts(00000000-0000-0000-0000-000000000007)"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80060888"), "{body}");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[],
            json!({"parentcontactid@odata.bind": 7}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");

    // Conditions and required columns.
    let (status, _, body) = env
        .patch(
            "opportunities(ferry_sourceid='err-1')",
            &[("If-None-Match", "*")],
            json!({"name": "again"}),
        )
        .await;
    assert_eq!(status, 412, "{body}");
    let (status, _, _) = env
        .patch(
            &format!("opportunities({id})"),
            &[("If-Match", &etag)],
            json!({"name": "v2"}),
        )
        .await;
    assert_eq!(status, 204, "the current version");
    let (status, _, body) = env
        .patch(
            &format!("opportunities({id})"),
            &[("If-Match", &etag)],
            json!({"name": "v3"}),
        )
        .await;
    assert_eq!((status, code(&body)), (412, "0x80060882"), "{body}");
    let (status, _, body) = env
        .patch(
            "opportunities(ferry_sourceid='err-missing')",
            &[("If-Match", "*")],
            json!({"name": "n"}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "0x80040217"), "{body}");
    let (status, body) = env
        .post("opportunities", &[], json!({"description": "no name"}))
        .await;
    assert_eq!((status, code(&body)), (400, "0x80040200"), "{body}");
    let (status, body) = env
        .post("opportunities", &[], json!(["not", "an", "object"]))
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");

    // Query options the emulator does not serve on these tables.
    for query in [
        "opportunities?$expand=ownerid",
        "opportunities?$orderby=name",
        "opportunities?$skiptoken=nonsense",
        "opportunities?$top=x",
        "opportunities(ferry_sourceid='a', name='b')",
        "opportunities(name='b')",
    ] {
        let (status, _, body) = env.get(query, &[]).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (status, _, _) = env.get("systemusers(ferry_sourceid='x')", &[]).await;
    assert_eq!(status, 400, "systemuser has no alternate key");
    assert_eq!(
        env.delete("systemusers(00000000-0000-0000-0000-000000000001)")
            .await,
        405
    );

    // Actions: bad actualend / actualrevenue, an unbound Status, -1 for the default.
    let bind = format!("/opportunities({id})");
    let (status, body) = env
        .post(
            "WinOpportunity",
            &[],
            json!({"Status": 3, "OpportunityClose": {"opportunityid@odata.bind": bind, "actualend": "soon"}}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, body) = env
        .post(
            "WinOpportunity",
            &[],
            json!({"Status": 3, "OpportunityClose": {"opportunityid@odata.bind": bind, "actualrevenue": "lots"}}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80048d19"), "{body}");
    let (status, body) = env
        .post(
            "LoseOpportunity",
            &[],
            json!({"Status": "lost", "OpportunityClose": {"opportunityid@odata.bind": bind}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = env.get("WinOpportunity", &[]).await;
    assert_eq!(status, 405, "{body}");
    let (status, body) = env
        .post(
            "LoseOpportunity",
            &[],
            json!({"Status": {"Value": -1}, "OpportunityClose": {"opportunityid@odata.bind": bind}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, _, lost) = env
        .get(
            &format!("opportunities({id})?$select=statecode,statuscode,actualvalue"),
            &[],
        )
        .await;
    assert_eq!(
        (lost["statecode"].as_i64(), lost["statuscode"].as_i64()),
        (Some(2), Some(4))
    );
    assert!(lost["actualvalue"].is_null(), "a lost deal earns nothing");
}

#[tokio::test]
async fn without_alternate_keys_the_new_tables_refuse_key_addressing() {
    let env = env(Options {
        alternate_keys: false,
        ..Options::default()
    })
    .await;
    let (status, _, body) = env
        .patch(
            "opportunities(ferry_sourceid='k')",
            &[],
            json!({"name": "n"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80060888"), "{body}");
    let (_, _, keys) = env
        .get("EntityDefinitions(LogicalName='opportunity')/Keys", &[])
        .await;
    assert_eq!(keys["value"], json!([]));
    // Two environments never share ids; one configured as the same organisation does.
    let other = Emulator::new(Options::default());
    let same = Emulator::new(Options {
        organization_id: Some(env.emulator.organization_id()),
        ..Options::default()
    });
    let app = |e: &Emulator| {
        e.shared
            .store
            .read()
            .map(|s| s.records.app_user())
            .unwrap_or(0)
    };
    assert_ne!(app(&env.emulator), app(&other));
    assert_eq!(app(&env.emulator), app(&same));
}

#[tokio::test]
async fn an_upserted_deal_is_closed_by_its_alternate_key_in_one_change_set() {
    let env = env(Options::default()).await;
    let body = format!(
        "--batch_t1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
PATCH {API_PREFIX}opportunities(ferry_sourceid='src-9') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"Closed on arrival\",\"estimatedvalue\":42}}\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
POST {API_PREFIX}WinOpportunity HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"Status\":-1,\"OpportunityClose\":{{\"subject\":\"Won\",\"opportunityid@odata.bind\":\"/opportunities(ferry_sourceid='src-9')\"}}}}\r\n\
--changeset_c1--\r\n--batch_t1--\r\n"
    );
    let (status, text) = super::post_batch(&env, body, false).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 2, "{text}");
    let (_, _, deal) = env
        .get(
            "opportunities(ferry_sourceid='src-9')?$select=statecode,statuscode,actualvalue",
            &[],
        )
        .await;
    assert_eq!(deal["statecode"], 1);
    assert_eq!(deal["statuscode"], 3);
    assert_eq!(deal["actualvalue"], 42.0);
    // A rerun's upsert of the closed deal is refused, as Dataverse refuses edits of closed
    // opportunities: a sink must not rewrite a closed deal it already closed.
    let (status, _, body) = env
        .patch(
            "opportunities(ferry_sourceid='src-9')",
            &[],
            json!({"name": "Closed on arrival"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "0x80040203"), "{body}");
}
